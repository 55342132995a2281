"""Our i-PI client against the real ``i-pi`` server, compared step for step with
i-PI's own metatomic driver (``i-pi-py_driver -m metatomic``) on the same input
and seed: NVE, NVT and NPT of the LJ model and of every shipped model family over
UNIX and INET sockets, path integrals with several clients and in batched mode.

Runs are short (10-20 steps of 32 atoms) to fit a 2-core CI; each reference run
is made once per session and shared. The LJ runs must agree to round-off; a
model family's within its tolerances (tests/ipi_families.py). ``make test`` runs
MACE over both transports and each other family once; the rest of the family
matrix is marked ``matrix``.
"""

import numpy as np
import pytest
from ipi_families import (
    POSITIONS_ATOL,
    PROPERTIES_RTOL,
    compare_runs,
    family_clients,
    report,
)

from ipi_testing import Simulation, read_extras, run_simulation
from structures import argon, copper_aluminium

SYSTEMS = {
    # 32 atoms each
    "lj": dict(structure=lambda: argon(repeat=2),
               simulation=dict(steps=20, temperature_k=80.0, timestep_fs=2.0)),
    # every model family (Cu, Al); the forces trajectory for the first step's check
    "cual": dict(structure=lambda: copper_aluminium(repeat=2),
                 simulation=dict(steps=10, temperature_k=300.0, timestep_fs=1.0, forces=True)),
}
FAMILIES = ["mace", "pet", "soap_bpnn"]


@pytest.fixture(scope="module")
def models(lj_model):
    return {"lj": lj_model}


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory, models):
    """i-PI with i-pi-py_driver -m metatomic, once per (model, ensemble, beads);
    ``family``: a model family's run (the Cu/Al system) instead of LJ's."""
    cache = {}

    def get(name, ensemble, nbeads=1, family=None):
        system = "lj" if family is None else "cual"
        model = models[name] if family is None else family.path
        key = (name if family is None else family.name, ensemble, nbeads)
        if key not in cache:
            directory = tmp_path_factory.mktemp(f"reference-{key[0]}-{ensemble}-{nbeads}")
            with family_clients(family):
                cache[key] = run_simulation(
                    directory, SYSTEMS[system]["structure"](),
                    simulation(system, ensemble, nbeads), model, ["reference"],
                )
        return cache[key]

    return get


def simulation(name, ensemble, nbeads=1, **changes):
    options = dict(SYSTEMS[name]["simulation"], ensemble=ensemble, nbeads=nbeads)
    if nbeads > 1:
        options["steps"] = 10
    options.update(changes)
    return Simulation(**options)


def assert_same_run(ours, reference):
    """Same trajectory (every bead, every step) and the same thermodynamics (LJ)."""
    assert len(ours.positions) == len(reference.positions)
    for bead, (mine, theirs) in enumerate(zip(ours.positions, reference.positions)):
        assert mine.shape == theirs.shape and len(mine) > 1, (bead, mine.shape, theirs.shape)
        error = np.abs(mine - theirs).max()
        assert error < POSITIONS_ATOL, f"bead {bead}: positions differ by {error:.3g} Bohr"
    np.testing.assert_allclose(ours.cells, reference.cells, rtol=0, atol=POSITIONS_ATOL)
    np.testing.assert_allclose(ours.properties, reference.properties,
                               rtol=PROPERTIES_RTOL["float64"], atol=1e-14)


# the LJ model runs NVE and NVT over both transports (a Latin square: the
# transport cannot change the trajectory, and each run costs ~5 s of process
# start-up on 2 cores); over INET we use the i-pi-py_driver-like entry point,
# over UNIX ``mlipdrive ipi``
@pytest.mark.parametrize("ensemble, transport", [("nve", "unix"), ("nvt", "inet")])
def test_trajectory_equals_ipis_metatomic_driver(ensemble, transport, models,
                                                  reference_runs, tmp_path):
    client = "mlipdrive" if transport == "unix" else "ipi-driver"
    extras = ensemble == "nve"
    ours = run_simulation(
        tmp_path, SYSTEMS["lj"]["structure"](),
        simulation("lj", ensemble, extras=extras), models["lj"], [client],
        transport=transport, extra=["--per-atom-energies"] if extras else [],
    )
    assert_same_run(ours, reference_runs("lj", ensemble))
    # the run moved: a wrong force would not go unnoticed
    assert np.abs(ours.positions[0][-1] - ours.positions[0][0]).max() > 1e-3
    if extras:
        assert_per_atom_energies(ours)


def family_cases():
    """By default NVT over UNIX for MACE and PET, NVE over INET for SOAP-BPNN
    (PET: ``mlipdrive ipi``, SOAP-BPNN: ``-o ...,extensions=DIR``)."""
    default = {("mace", "nvt"), ("pet", "nvt"), ("soap_bpnn", "nve")}
    for family in FAMILIES:
        for ensemble, transport in (("nve", "inet"), ("nvt", "unix")):
            marks = () if (family, ensemble) in default else (pytest.mark.matrix,)
            yield pytest.param(family, ensemble, transport, marks=marks,
                               id=f"{family}-{ensemble}-{transport}")


@pytest.mark.parametrize("model_family, ensemble, transport", list(family_cases()),
                         indirect=["model_family"])
def test_family_trajectory_equals_ipis_metatomic_driver(model_family, ensemble, transport,
                                                         reference_runs, tmp_path):
    client = "mlipdrive" if transport == "unix" else "ipi-driver"
    structure = SYSTEMS["cual"]["structure"]()
    run = simulation("cual", ensemble)
    with family_clients(model_family):
        ours = run_simulation(tmp_path, structure, run, model_family.path, [client],
                              transport=transport)
    reference = reference_runs(model_family.name, ensemble, family=model_family)
    found = compare_runs(ours, reference, model_family, structure, run)
    report(f"{model_family.name} {ensemble} {client}", found)
    # the run moved: a wrong force would not go unnoticed
    assert np.abs(ours.positions[0][-1] - ours.positions[0][0]).max() > 1e-3


def assert_per_atom_energies(run):
    """The extras trajectory holds per-atom energies that sum to the potential."""
    extras = read_extras(run.directory / "sim.extras_0")
    potential = run.property("potential")
    assert len(extras) == len(potential)
    for frame, energy in zip(extras, potential):
        assert frame.shape == (32,)
        assert frame.sum() == pytest.approx(energy, rel=1e-9)


def test_npt_cell_and_pressure_equal_ipis_metatomic_driver(models, tmp_path,
                                                          tmp_path_factory):
    """The flexible barostat moves the cell with our virial: sign, units, layout."""
    run = simulation("lj", "npt", steps=15)
    reference = run_simulation(tmp_path_factory.mktemp("reference-lj-npt"),
                               argon(repeat=2), run, models["lj"], ["reference"])
    ours = run_simulation(tmp_path, argon(repeat=2), run, models["lj"], ["mlipdrive"])
    assert_same_run(ours, reference)
    volume = ours.property("volume")
    assert abs(volume[-1] - volume[0]) > 1e-6 * volume[0], "the cell did not move"


@pytest.mark.parametrize("clients, batch_size", [
    (["mlipdrive", "mlipdrive"], 1),  # 4 beads shared by 2 client processes
    (["mlipdrive"], 4),  # i-PI's batched mode: all beads in one message
])
def test_path_integrals_with_four_beads(clients, batch_size, models, reference_runs,
                                        tmp_path):
    ours = run_simulation(tmp_path, argon(repeat=2),
                          simulation("lj", "nvt", nbeads=4, batch_size=batch_size),
                          models["lj"], clients)
    assert all(code == 0 for code in ours.client_codes)
    assert_same_run(ours, reference_runs("lj", "nvt", nbeads=4))
    # the beads are not on top of each other
    assert np.abs(ours.positions[0][-1] - ours.positions[3][-1]).max() > 1e-4
