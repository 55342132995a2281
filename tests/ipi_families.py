"""i-PI runs of a shipped model family, and their comparison with i-PI's own
metatomic driver within the family's tolerances (test_ipi_server.py,
test_ipi_mpi.py).

:func:`family_clients` makes :func:`ipi_testing.run_simulation` pass
the family's TorchScript extensions directory to every client: ``--extensions
DIR`` to ``mlipdrive ipi`` (serial and under mpirun), ``-o ...,extensions=DIR``
to ``mlipdrive-ipi-driver`` and to i-PI's ``i-pi-py_driver -m metatomic``. The
latter, like any process that only gives metatomic the extensions directory,
loads sphericart-torch's library without the autograd formulas that its Python
package registers, and its SOAP-BPNN forces are silently wrong (2e-3 Ha/Bohr
here): as the reference it runs with the family's ``python_modules`` imported
first.
"""

import contextlib
import sys
from typing import Dict
from unittest import mock

import ase
import ase.units
import numpy as np

import ipi_testing

HARTREE = ase.units.Hartree  # eV
BOHR = ase.units.Bohr  # Å
ACCELERATION = ase.units.fs**2  # Å/fs² per eV/(Å amu)
PRESSURE = HARTREE / BOHR**3  # eV/Å³ per atomic unit of pressure

# both clients evaluate the same float64 model with the same unit factors; only
# the order of floating-point sums may differ (neighbour lists)
POSITIONS_ATOL = 1e-10  # Bohr
# i-PI's thermodynamic properties over the whole run, relative, by the model's
# dtype: float32 energies and forces carry ~1e-7 relative round-off, which the
# step-to-step propagation accumulates; 1e-5 is 100 float32 epsilons. The first
# step, where both clients see the same structure, is checked against the
# family's own tolerances instead (:func:`compare_runs`).
PROPERTIES_RTOL = {"float64": 1e-9, "float32": 1e-5}


@contextlib.contextmanager
def family_clients(family):
    """Within the block, run_simulation's clients get the family's extensions."""
    if family is None or family.extensions is None:
        yield
        return
    original = ipi_testing.client_command
    extensions = str(family.extensions)

    def command(kind, model, **options):
        line = list(original(kind, model, **options))
        if kind in ("mlipdrive", "mpi"):
            return line + ["--extensions", extensions]
        where = line.index("-o") + 1
        line[where] += f",extensions={extensions}"
        if kind == "reference":
            imports = "".join(f"import {module}; " for module in family.python_modules)
            code = (
                f"import runpy, sys; sys.path.append({extensions!r}); {imports}"
                f"sys.argv[0] = {line[0]!r}; runpy.run_path({line[0]!r}, run_name='__main__')"
            )
            line = [sys.executable, "-c", code, *line[1:]]
        return line

    with mock.patch.object(ipi_testing, "client_command", command):
        yield


def positions_limit(family, structure: ase.Atoms, simulation) -> float:
    """Bohr: how far two runs may drift apart when each step's forces differ by
    at most the family's force tolerance: the lightest atom, pushed by that
    difference for the whole run, moves a·t²/2; twice that."""
    acceleration = family.forces / structure.get_masses().min() * ACCELERATION
    duration = simulation.steps * simulation.timestep_fs
    return max(POSITIONS_ATOL, acceleration * duration**2 / BOHR)


def compare_runs(ours, reference, family, structure, simulation) -> Dict[str, float]:
    """Assert that ``ours`` is ``reference``'s run within the family's
    tolerances; the largest differences.

    The first step evaluates the same structure in both runs: its potential
    energy, forces (when the forces trajectory was written) and pressure are held
    to the family's tolerances. The whole run: every bead's positions within
    :func:`positions_limit`, the properties within the dtype's relative tolerance.
    """
    n_atoms = len(structure)
    limit = positions_limit(family, structure, simulation)
    found = {}
    assert len(ours.positions) == len(reference.positions)
    for bead, (mine, theirs) in enumerate(zip(ours.positions, reference.positions)):
        assert mine.shape == theirs.shape and len(mine) > 1, (bead, mine.shape, theirs.shape)
        error = float(np.abs(mine - theirs).max())
        found["positions"] = max(found.get("positions", 0.0), error)
        assert error < limit, f"bead {bead}: positions differ by {error:.3g} Bohr (limit {limit:.3g})"
    np.testing.assert_allclose(ours.cells, reference.cells, rtol=0, atol=limit)

    first = {
        "energy/atom": abs(ours.property("potential")[0] - reference.property("potential")[0])
        * HARTREE / n_atoms,
        # the kinetic part is the same (same structure and velocities)
        "stress": abs(ours.property("pressure_md")[0] - reference.property("pressure_md")[0])
        * PRESSURE,
    }
    limits = {"energy/atom": family.energy_per_atom, "stress": family.stress,
              "forces": family.forces}
    forces = ours.directory / "sim.for_0.bin"
    if forces.exists():
        mine, _ = ipi_testing.read_binary_trajectory(forces)
        theirs, _ = ipi_testing.read_binary_trajectory(reference.directory / "sim.for_0.bin")
        first["forces"] = float(np.abs(mine[0] - theirs[0]).max()) * HARTREE / BOHR
    found.update(first)
    over = {k: (v, limits[k]) for k, v in first.items() if not v <= limits[k]}
    assert not over, f"{family.name}, first step: (difference, limit) {over}"

    rtol = PROPERTIES_RTOL[family.dtype]
    difference = np.abs(ours.properties - reference.properties)
    allowed = rtol * np.abs(reference.properties) + 1e-14
    found["properties (relative)"] = float(
        (difference / np.maximum(np.abs(reference.properties), 1e-300)).max()
    )
    worst = np.unravel_index(np.argmax(difference / allowed), difference.shape)
    assert (difference <= allowed).all(), (
        f"{family.name}: {ours.PROPERTIES[worst[1]]} at row {worst[0]} differs by "
        f"{difference[worst]:.3g} (limit {allowed[worst]:.3g})"
    )
    return found


def report(label: str, found: Dict[str, float]) -> None:
    """The differences to the reference, for ``pytest -s``."""
    print(f"IPI {label}: " + " ".join(f"{k}={v:.2e}" for k, v in found.items()))
