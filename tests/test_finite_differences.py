"""Forces == -dE/dr and stress == (1/V) dE/d(strain), by central differences."""

import numpy as np
import pytest

import mlipdrive
from mlipdrive.testing import argon, copper_aluminium

# central differences with h = 1e-4 Å: truncation ~h^2 E''' ~ 1e-8, round-off ~1e-12/h
STEP = 1e-4
FD_TOLERANCE = 1e-6

CASES = [("lj_model", argon), ("lj_model_full", argon), ("mace_model", copper_aluminium)]


def energy(potential, atoms, positions=None, cell=None):
    positions = atoms.positions if positions is None else positions
    cell = atoms.cell.array if cell is None else cell
    return potential.compute(positions, atoms.numbers, cell, True, forces=False, stress=False).energy


@pytest.mark.parametrize("model_fixture,structure", CASES)
def test_forces_are_energy_gradient(request, model_fixture, structure):
    potential = mlipdrive.load(request.getfixturevalue(model_fixture))
    atoms = structure(repeat=2, seed=5)
    forces = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True).forces
    rng = np.random.default_rng(0)
    for atom in rng.choice(len(atoms), size=4, replace=False):
        for axis in range(3):
            plus, minus = atoms.positions.copy(), atoms.positions.copy()
            plus[atom, axis] += STEP
            minus[atom, axis] -= STEP
            numeric = -(energy(potential, atoms, plus) - energy(potential, atoms, minus)) / (
                2 * STEP
            )
            assert abs(numeric - forces[atom, axis]) < FD_TOLERANCE, (atom, axis)


@pytest.mark.parametrize("model_fixture,structure", CASES)
def test_stress_is_strain_derivative(request, model_fixture, structure):
    potential = mlipdrive.load(request.getfixturevalue(model_fixture))
    atoms = structure(repeat=2, seed=6)
    stress = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True).stress
    volume = atoms.get_volume()
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * STEP
                values.append(
                    energy(potential, atoms, atoms.positions @ strain, atoms.cell.array @ strain)
                )
            numeric = (values[0] - values[1]) / (2 * STEP) / volume
            assert abs(numeric - stress[a, b]) < FD_TOLERANCE, (a, b)
