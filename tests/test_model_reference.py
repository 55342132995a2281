"""Every shipped model family through mlipdrive (its ASE calculator over the
Python driver) == metatomic's own ASE calculator within the family's
tolerances, and the symmetries (rotation, translation, permutation).

The largest differences are printed (``pytest -s``) as ``REFERENCE`` lines.
"""

import numpy as np
import pytest
from metatomic_ase import MetatomicCalculator

import mlipdrive
from mlipdrive.ase import MLIPCalculator
from structures import copper_aluminium, random_rotation

# the 108-atom frame the families' tolerances were measured on, and two smaller,
# less strained ones (many periodic images of each atom within 9 Å)
STRUCTURES = {
    "frame108": lambda: copper_aluminium(repeat=3, rattle=0.1, strain=0.03),
    "seed0": lambda: copper_aluminium(repeat=2, seed=0),
    "seed1": lambda: copper_aluminium(repeat=2, seed=1),
}


@pytest.fixture(scope="module")
def potential(model_family):
    return mlipdrive.load(model_family.path, extensions=model_family.extensions)


@pytest.fixture(scope="module")
def reference(model_family):
    """metatomic's ASE calculator (reused: a new one costs seconds of first calls)."""
    return MetatomicCalculator(model_family.path, extensions_directory=model_family.extensions)


def evaluate(potential, atoms):
    return potential.compute(
        atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc, per_atom=True
    )


def reference_results(calculator, atoms):
    """energy, forces, 3x3 stress and per-atom energies of ``atoms`` by ``calculator``."""
    atoms = atoms.copy()
    atoms.calc = calculator
    return mlipdrive.Results(
        energy=atoms.get_potential_energy(),
        forces=atoms.get_forces(),
        stress=atoms.get_stress(voigt=False),
        energies=atoms.get_potential_energies(),
    )


def differences(ours, theirs, n_atoms, stress=True):
    """Largest differences, in eV/atom, eV/Å, eV/Å³ (symmetric part) and eV."""
    out = {
        "energy/atom": abs(ours.energy - theirs.energy) / n_atoms,
        "forces": float(np.abs(ours.forces - theirs.forces).max()),
        "energies": float(np.abs(ours.energies - theirs.energies).max()),
    }
    if stress:
        symmetric = 0.5 * (ours.stress + ours.stress.T)
        out["stress"] = float(np.abs(symmetric - 0.5 * (theirs.stress + theirs.stress.T)).max())
    return out


def assert_within(family, found, energies, what):
    """``found`` (from :func:`differences`) within the family's tolerances."""
    limits = {
        "energy/atom": family.energy_per_atom,
        "forces": family.forces,
        "stress": family.stress,
        "energies": family.energies_limit(energies),
    }
    print(f"REFERENCE {family.name} {what}: " + " ".join(f"{k}={v:.2e}" for k, v in found.items()))
    over = {k: (v, limits[k]) for k, v in found.items() if not v <= limits[k]}
    assert not over, f"{family.name} {what}: (difference, limit) {over}"


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_matches_metatomic_calculator(model_family, potential, reference, name):
    atoms = STRUCTURES[name]()
    theirs = reference_results(reference, atoms)
    ours = atoms.copy()
    ours.calc = MLIPCalculator(potential)
    mine = mlipdrive.Results(
        energy=ours.get_potential_energy(),
        forces=ours.get_forces(),
        stress=ours.get_stress(voigt=False),
        energies=ours.get_potential_energies(),
    )
    found = differences(mine, theirs, len(atoms))
    assert_within(model_family, found, theirs.energies, f"python {name}")


def rotated(atoms, rotation):
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    out.positions = atoms.positions @ rotation.T
    return out


def test_rotation(model_family, potential, reference):
    """A rotated frame (a cell that is no longer lower-triangular) equals the
    reference on it; for a rotation-invariant model, also the rotated answer."""
    atoms = copper_aluminium(repeat=2, seed=3)
    rotation = random_rotation(seed=4)
    turned = rotated(atoms, rotation)
    b = evaluate(potential, turned)
    found = differences(b, reference_results(reference, turned), len(atoms))
    assert_within(model_family, found, b.energies, "python rotated")
    if not model_family.rotation_invariant:
        return
    a = evaluate(potential, atoms)
    expected = mlipdrive.Results(
        energy=a.energy,
        forces=a.forces @ rotation.T,
        stress=rotation @ a.stress @ rotation.T,
        energies=a.energies,
    )
    found = differences(b, expected, len(atoms))
    # the full 3x3 stress: an invariant model's virial is symmetric
    found["stress"] = float(np.abs(b.stress - expected.stress).max())
    assert_within(model_family, found, a.energies, "rotation invariance")


def test_translation_and_permutation_invariance(model_family, potential):
    atoms = copper_aluminium(repeat=2, seed=5)
    a = evaluate(potential, atoms)

    shifted = atoms.copy()
    shifted.positions += np.array([0.31, -1.7, 2.9])
    found = differences(evaluate(potential, shifted), a, len(atoms))
    assert_within(model_family, found, a.energies, "translation invariance")

    order = np.random.default_rng(6).permutation(len(atoms))
    c = evaluate(potential, atoms[order])
    expected = mlipdrive.Results(
        energy=a.energy, forces=a.forces[order], stress=a.stress, energies=a.energies[order]
    )
    found = differences(c, expected, len(atoms))
    assert_within(model_family, found, a.energies, "permutation invariance")
