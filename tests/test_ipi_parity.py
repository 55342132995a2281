"""Every ``-o`` option of i-PI's metatomic driver through ``mlipdrive-ipi-driver``,
serial and under ``mpirun -np 2``, against i-PI's own driver (``i-pi-py_driver
-m metatomic``) given the same option on the same input and seed: the same
trajectory, and the same extras (energy uncertainty, committee). Also the
virial's symmetrisation and i-PI's ``<activelist>``.

The models are exact LJ argon with every kind of output (``parity_models``).
"""

import numpy as np
import pytest
from parity_models import export_asymmetric_argon, export_parity_argon

from ipi_testing import Simulation, read_extras, run_simulation
from structures import argon

POSITIONS_ATOL = 1e-10  # Bohr, the same float64 model in two clients
PROPERTIES_RTOL = 1e-9
EXTRAS_ATOL = 1e-12  # Hartree (per atom) or Hartree/Bohr

# -o options, and the extras key they make both drivers write (None: none)
OPTIONS = {
    "non_conservative": ("non_conservative=True", None),
    "energy_variant": ("energy_variant=strong", None),
    # the default energy, the strong heads and uncertainty (i-PI knows no 'off')
    "variants": (
        "non_conservative=True,non_conservative_variant=strong,uncertainty_variant=strong,"
        "uncertainty_threshold=0.01", "energy_uncertainty",
    ),
    "uncertainty_threshold": ("uncertainty_threshold=0.01", "energy_uncertainty"),
    "energy_ensemble": ("energy_ensemble=True", "committee_pot"),
    "force_virial_ensemble": ("energy_ensemble=True,force_virial_ensemble=True", "committee_force"),
    "check_consistency, skin": ("check_consistency=True,skin=1.5", None),
}
MPI_OPTIONS = ["non_conservative", "variants", "uncertainty_threshold"]


@pytest.fixture(scope="module")
def parity_model(tmp_path_factory):
    return export_parity_argon(tmp_path_factory.mktemp("models") / "parity.pt")


def simulation(extras=None, **changes):
    options = dict(steps=8, temperature_k=80.0, timestep_fs=2.0, ensemble="nvt")
    if extras is not None:
        options.update(extras=True, extras_type=extras)
    options.update(changes)
    return Simulation(**options)


def assert_same_run(ours, reference, extras=None):
    for mine, theirs in zip(ours.positions, reference.positions):
        assert mine.shape == theirs.shape and len(mine) > 1
        error = np.abs(mine - theirs).max()
        assert error < POSITIONS_ATOL, f"positions differ by {error:.3g} Bohr"
    np.testing.assert_allclose(ours.cells, reference.cells, rtol=0, atol=POSITIONS_ATOL)
    properties = list(reference.PROPERTIES)
    if np.isnan(reference.property("pressure_md")).all():
        # i-PI 3.3.1's driver looks for the stress head under its plain name only:
        # with a non_conservative_variant its virial is NaN; ours is the head's
        assert np.isfinite(ours.property("pressure_md")).all()
        properties.remove("pressure_md")
    columns = [reference.PROPERTIES.index(name) for name in properties]
    np.testing.assert_allclose(ours.properties[:, columns], reference.properties[:, columns],
                               rtol=PROPERTIES_RTOL, atol=1e-14)
    if extras is not None:
        mine = read_extras(ours.directory / "sim.extras_0")
        theirs = read_extras(reference.directory / "sim.extras_0")
        assert len(mine) == len(theirs) > 1 and len(mine[0]) > 1
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(a, b, rtol=0, atol=EXTRAS_ATOL)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_driver_option_gives_the_references_run(parity_model, tmp_path, name):
    params, extras = OPTIONS[name]
    structure = argon(repeat=2)
    runs = [
        run_simulation(tmp_path / kind, structure, simulation(extras), parity_model, [kind],
                       params=params)
        for kind in ("reference", "ipi-driver")
    ]
    assert_same_run(runs[1], runs[0], extras)


@pytest.mark.parametrize("name", [name if name == "non_conservative" else
                                  pytest.param(name, marks=pytest.mark.matrix)
                                  for name in MPI_OPTIONS])
def test_driver_option_under_mpi_gives_the_references_run(parity_model, tmp_path, name):
    params, extras = OPTIONS[name]
    structure = argon(repeat=2)
    reference = run_simulation(tmp_path / "reference", structure, simulation(extras),
                               parity_model, ["reference"], params=params)
    parallel = run_simulation(tmp_path / "mpi", structure, simulation(extras), parity_model,
                              ["mpi-driver"], params=params, extra=["-v"])
    assert "domain decomposition over 2 MPI ranks" in parallel.client_logs[0]
    assert_same_run(parallel, reference, extras)


@pytest.mark.parametrize("kind", ["ipi-driver", "mpi-driver"])
def test_scale_is_ipis_force_weight(parity_model, tmp_path, kind):
    """-o scale=0.5 gives the run of i-PI's driver under <force weight='0.5'>."""
    structure = argon(repeat=2)
    reference = run_simulation(tmp_path / "reference", structure, simulation(weight=0.5),
                               parity_model, ["reference"])
    ours = run_simulation(tmp_path / kind, structure, simulation(), parity_model, [kind],
                          params="scale=0.5")
    assert_same_run(ours, reference)


def test_uncertainty_action_stop_ends_the_client(parity_model, tmp_path):
    with pytest.raises(AssertionError) as error:
        run_simulation(tmp_path, argon(repeat=2), simulation(steps=2), parity_model,
                       ["ipi-driver"], params="uncertainty_threshold=0.01,uncertainty_action=stop",
                       timeout=60)
    assert "a client exited with 6" in str(error.value)
    assert "UncertaintyExceeded: energy uncertainty above the threshold of 0.01" in str(error.value)


def test_uncertainty_warning_names_the_evaluation_and_atoms(parity_model, tmp_path):
    """A threshold below the atoms' uncertainty: the client warns at each
    evaluation on stderr; the default threshold does not on this crystal."""
    structure = argon(repeat=2)
    run = run_simulation(tmp_path / "low", structure, simulation(steps=2), parity_model,
                         ["ipi-driver"], params="uncertainty_threshold=0.01")
    warnings = [line for line in run.client_logs[0].splitlines() if "warning:" in line]
    assert len(warnings) == 3, run.client_logs[0]  # 2 steps + the initial evaluation
    assert "above the threshold of 0.01 eV/atom for 32 atom(s) at evaluation 1" in warnings[0]
    quiet = run_simulation(tmp_path / "default", structure, simulation(steps=2), parity_model,
                           ["ipi-driver"])
    assert "warning:" not in quiet.client_logs[0]


def test_ensembles_are_refused_under_mpi(parity_model, tmp_path):
    with pytest.raises(AssertionError, match="ensembles .* run on one rank"):
        run_simulation(tmp_path, argon(repeat=2), simulation(steps=2), parity_model,
                       ["mpi-driver"], params="energy_ensemble=True", timeout=60)


def test_virial_is_symmetrised_as_ipis_driver_does(tmp_path):
    """A model whose virial is not symmetric, under a flexible barostat: the cell
    follows the virial, and our cells are the reference's only if we send the
    same symmetric part."""
    model = export_asymmetric_argon(tmp_path / "asymmetric.pt")
    structure = argon(repeat=2)
    npt = simulation(ensemble="npt", steps=10)
    runs = [run_simulation(tmp_path / kind, structure, npt, model, [kind])
            for kind in ("reference", "ipi-driver")]
    assert_same_run(runs[1], runs[0])
    # the barostat did move the cell's off-diagonal
    assert np.abs(runs[0].cells[-1] - runs[0].cells[0]).max() > 1e-6


ACTIVE = list(range(0, 32, 2))


def test_activelist_with_the_full_structure(parity_model, tmp_path):
    """i-PI sends only the <activelist> atoms: with --active the client takes
    their types from the full structure, and the run is i-PI's driver's given a
    template of just those atoms."""
    import ase.io

    structure = argon(repeat=2)
    (tmp_path / "reference").mkdir()
    ase.io.write(tmp_path / "reference" / "active.xyz", structure[ACTIVE], format="extxyz")
    active = simulation(active=ACTIVE)
    reference = run_simulation(tmp_path / "reference", structure, active, parity_model,
                               ["reference"], params="template=active.xyz")
    ours = run_simulation(tmp_path / "ours", structure, active, parity_model, ["mlipdrive"],
                          extra=["--active", ",".join(map(str, ACTIVE))])
    assert_same_run(ours, reference)


def test_activelist_without_active_says_what_to_give(parity_model, tmp_path):
    with pytest.raises(AssertionError) as error:
        run_simulation(tmp_path, argon(repeat=2), simulation(active=ACTIVE, steps=2),
                       parity_model, ["mlipdrive"], timeout=60)
    assert "i-PI sent positions of 16 atoms, but this client serves 32" in str(error.value)
    assert "--active with the same indices" in str(error.value)


def test_an_ensemble_the_model_lacks_is_refused_at_start(tmp_path):
    from parity_models import export_parity_argon as export

    model = export(tmp_path / "no-ensemble.pt", uncertainty=False)
    with pytest.raises(AssertionError) as error:
        run_simulation(tmp_path / "run", argon(repeat=2), simulation(steps=2), model,
                       ["ipi-driver"], params="energy_ensemble=True", timeout=60)
    assert "a client exited with 2" in str(error.value)
    assert "has no 'energy_ensemble' output" in str(error.value)
