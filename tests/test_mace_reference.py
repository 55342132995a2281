"""The shipped model through mlipdrive == metatomic's own ASE calculator, and its
symmetries (rotation, translation, permutation)."""

import numpy as np
import pytest
from metatomic_ase import MetatomicCalculator

import mlipdrive
from mlipdrive.ase import MLIPCalculator
from mlipdrive.testing import SAME_MODEL, copper_aluminium, random_rotation


@pytest.fixture(scope="module")
def potential(mace_model):
    return mlipdrive.load(mace_model)


def evaluate(potential, atoms):
    return potential.compute(
        atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc, per_atom=True
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_metatomic_calculator(mace_model, potential, seed):
    atoms = copper_aluminium(repeat=2, seed=seed)
    reference = atoms.copy()
    reference.calc = MetatomicCalculator(mace_model)
    ours = atoms.copy()
    ours.calc = MLIPCalculator(potential)

    energy = reference.get_potential_energy()
    scale = abs(energy)
    assert abs(ours.get_potential_energy() - energy) < SAME_MODEL * scale
    np.testing.assert_allclose(ours.get_forces(), reference.get_forces(), rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(ours.get_stress(), reference.get_stress(), rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(
        ours.get_potential_energies(), reference.get_potential_energies(), rtol=0,
        atol=SAME_MODEL,
    )


def test_rotation_invariance(potential):
    atoms = copper_aluminium(repeat=2, seed=3)
    rotation = random_rotation(seed=4)
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rotation.T
    a, b = evaluate(potential, atoms), evaluate(potential, rotated)
    assert abs(a.energy - b.energy) < SAME_MODEL * abs(a.energy)
    np.testing.assert_allclose(b.forces, a.forces @ rotation.T, rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(b.stress, rotation @ a.stress @ rotation.T, rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(b.energies, a.energies, rtol=0, atol=SAME_MODEL)


def test_translation_and_permutation_invariance(potential):
    atoms = copper_aluminium(repeat=2, seed=5)
    a = evaluate(potential, atoms)

    shifted = atoms.copy()
    shifted.positions += np.array([0.31, -1.7, 2.9])
    b = evaluate(potential, shifted)
    assert abs(a.energy - b.energy) < SAME_MODEL * abs(a.energy)
    np.testing.assert_allclose(b.forces, a.forces, rtol=0, atol=SAME_MODEL)

    order = np.random.default_rng(6).permutation(len(atoms))
    permuted = atoms[order]
    c = evaluate(potential, permuted)
    assert abs(a.energy - c.energy) < SAME_MODEL * abs(a.energy)
    np.testing.assert_allclose(c.forces, a.forces[order], rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(c.energies, a.energies[order], rtol=0, atol=SAME_MODEL)
