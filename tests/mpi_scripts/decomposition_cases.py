"""Structures for the domain-decomposition tests, shared by the in-process tests
(tests/test_decomposition.py) and the mpirun script (decomposition_check.py).

Every structure is small, randomly displaced (seeded) and chosen to stress one
part of the geometry; each is built for a model's elements and lattice constant so
that LJ (Ar) and the shipped Cu/Al models (every model family) get comparable cases.
"""

import pathlib
import sys

import ase.build
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/
from structures import SAME_MODEL  # noqa: E402

# (elements, fcc lattice constant in Å): the LJ models, the shipped Cu/Al models
LJ_SPECIES = (["Ar"], 5.26)
CUAL_SPECIES = (["Cu", "Al"], 3.75)
# volume per atom of the Cu/Al cases: turns a stress tolerance into a virial per atom
CUAL_ATOMIC_VOLUME = 3.75**3 / 4


def _fcc(elements, a, repeat, seed, rattle=0.1):
    atoms = ase.build.bulk(elements[0], "fcc", a=a, cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    numbers = rng.choice([ase.data.atomic_numbers[e] for e in elements], len(atoms))
    atoms.numbers = numbers
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    return atoms


def structures(species, seed=0):
    """name -> (positions, types, cell, pbc), in Å."""
    elements, a = species
    cases = {}

    # triclinic box smaller than twice the range; atoms given unwrapped
    atoms = _fcc(elements, a, (2, 2, 2), seed)
    cell = atoms.cell[:] + a * np.array([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0], [0.3, -0.5, 0.0]])
    atoms.set_cell(cell, scale_atoms=True)
    atoms.positions -= 0.7 * a
    cases["triclinic"] = atoms

    # two atoms in a primitive cell much smaller than the range: many image shells,
    # and with 3-4 ranks some domains are empty
    atoms = ase.build.bulk(elements[-1], "fcc", a=a).repeat((2, 1, 1))
    atoms.numbers = [ase.data.atomic_numbers[elements[0]], atoms.numbers[1]]
    atoms.positions += np.random.default_rng(seed + 1).normal(scale=0.1, size=(2, 3))
    cases["tiny"] = atoms

    # atoms clustered in the first third of a long periodic box: empty domains
    block = _fcc(elements, a, (3, 2, 2), seed + 2)
    block.set_cell(block.cell[:] * np.array([[3.2], [1.0], [1.0]]), scale_atoms=False)
    cases["clustered"] = block

    # a free cluster: no cell, no periodicity; extent from the bounding box
    atoms = _fcc(elements, a, (2, 2, 2), seed + 3)
    atoms.set_cell(np.zeros((3, 3)))
    atoms.pbc = False
    cases["cluster"] = atoms

    # a slab periodic in a triclinic plane, free along the third axis (zero vector)
    atoms = _fcc(elements, a, (2, 2, 1), seed + 4)
    cell = atoms.cell[:].copy()
    cell[1, 0] += 0.4 * a
    cell[2] = 0.0
    atoms.set_cell(cell, scale_atoms=False)
    atoms.pbc = [True, True, False]
    cases["slab"] = atoms

    return {
        name: (
            atoms.positions.copy(),
            atoms.numbers.astype(np.int32),
            atoms.cell[:].copy(),
            atoms.pbc.copy(),
        )
        for name, atoms in cases.items()
    }


def errors(results, reference, n_atoms):
    """Max deviations: energy relative and per atom; forces, virial, per-atom
    energies absolute; virial per atom; and the largest per-atom energy."""
    difference = abs(results.energy - reference.energy)
    out = {"energy": difference / max(abs(reference.energy), 1e-300)}
    for name in ("forces", "virial", "stress", "energies"):
        value, ref = getattr(results, name), getattr(reference, name)
        if ref is None:
            assert value is None, f"{name} should be None"
            continue
        out[name] = float(np.abs(value - ref).max(initial=0.0))
    out["energy/atom"] = difference / n_atoms
    if "virial" in out:
        out["virial/atom"] = out["virial"] / n_atoms
    if reference.energies is not None:
        out["largest_energy"] = float(np.abs(reference.energies).max(initial=0.0))
    return out


def lj_limits():
    """The LJ models in float64: the decomposition only reorders sums. Energy
    relative; forces (eV/Å), virial and per-atom energies (eV) absolute."""
    return {"energy": SAME_MODEL, "forces": SAME_MODEL, "virial": SAME_MODEL, "energies": SAME_MODEL}


def family_limits(family, largest_energy):
    """A model family's tolerances in the keys of :func:`errors`: energy per atom,
    forces, the stress tolerance as a virial per atom, per-atom energies (given
    the largest per-atom energy, for the dtype's rounding)."""
    return {
        "energy/atom": family.energy_per_atom,
        "forces": family.forces,
        "virial/atom": family.stress * CUAL_ATOMIC_VOLUME,
        "energies": family.energies_limit([largest_energy]),
    }


def over_limits(deviations, limits):
    """The deviations over their limit, {key: (deviation, limit)} (empty if none)."""
    return {
        key: (deviations[key], limit)
        for key, limit in limits.items()
        if key in deviations and not deviations[key] < limit
    }
