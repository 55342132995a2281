"""Forces == -dE/dr and stress == (1/V) dE/d(strain) (its symmetric part), by
central differences: the exact LJ models, and every shipped model family within
its tolerances."""

import numpy as np
import pytest

import mlipdrive
from structures import argon, copper_aluminium

# central differences with h = 1e-4 Å: truncation ~h^2 E''' ~ 1e-8, round-off ~1e-12/h
STEP = 1e-4
FD_TOLERANCE = 1e-6
# (positions in Å, strain) steps by the model's dtype: a float32 energy carries
# ~1e-6 eV of round-off, so larger steps (truncation ~h² E''' then dominates)
FAMILY_STEPS = {"float64": (1e-4, 1e-4), "float32": (1e-2, 1e-3)}

LJ_MODELS = ["lj_model", "lj_model_full"]


def energy(potential, atoms, positions=None, cell=None):
    positions = atoms.positions if positions is None else positions
    cell = atoms.cell.array if cell is None else cell
    return potential.compute(positions, atoms.numbers, cell, True, forces=False, stress=False).energy


def force_errors(potential, atoms, step):
    """|numeric - analytic| for 3 components of 4 random atoms."""
    forces = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True).forces
    rng = np.random.default_rng(0)
    errors = {}
    for atom in rng.choice(len(atoms), size=4, replace=False):
        for axis in range(3):
            plus, minus = atoms.positions.copy(), atoms.positions.copy()
            plus[atom, axis] += step
            minus[atom, axis] -= step
            numeric = -(energy(potential, atoms, plus) - energy(potential, atoms, minus)) / (
                2 * step
            )
            errors[(int(atom), axis)] = abs(numeric - forces[atom, axis])
    return errors


def stress_errors(potential, atoms, step):
    """|numeric - analytic| for the 9 components of the stress: the symmetric
    part of the numeric strain derivative, as compute() gives the stress (a
    model that is not exactly rotation-invariant, PET, has an antisymmetric part)."""
    stress = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True).stress
    volume = atoms.get_volume()
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * step
                values.append(
                    energy(potential, atoms, atoms.positions @ strain, atoms.cell.array @ strain)
                )
            numeric[a, b] = (values[0] - values[1]) / (2 * step) / volume
    symmetric = 0.5 * (numeric + numeric.T)
    return {(a, b): abs(symmetric[a, b] - stress[a, b]) for a in range(3) for b in range(3)}


def assert_below(errors, limit, what):
    worst = max(errors, key=errors.get)
    print(f"FINITE-DIFFERENCE {what}: {errors[worst]:.2e} (limit {limit:.0e})")
    over = {k: v for k, v in errors.items() if not v < limit}
    assert not over, f"{what}: over {limit}: {over}"


@pytest.mark.parametrize("model_fixture", LJ_MODELS)
def test_lj_forces_are_energy_gradient(request, model_fixture):
    potential = mlipdrive.load(request.getfixturevalue(model_fixture))
    assert_below(force_errors(potential, argon(repeat=2, seed=5), STEP), FD_TOLERANCE,
                 f"{model_fixture} forces")


@pytest.mark.parametrize("model_fixture", LJ_MODELS)
def test_lj_stress_is_strain_derivative(request, model_fixture):
    potential = mlipdrive.load(request.getfixturevalue(model_fixture))
    assert_below(stress_errors(potential, argon(repeat=2, seed=6), STEP), FD_TOLERANCE,
                 f"{model_fixture} stress")


@pytest.fixture(scope="module")
def family_potential(model_family):
    return mlipdrive.load(model_family.path, extensions=model_family.extensions)


def test_forces_are_energy_gradient(model_family, family_potential):
    step, _ = FAMILY_STEPS[model_family.dtype]
    errors = force_errors(family_potential, copper_aluminium(repeat=2, seed=5), step)
    assert_below(errors, model_family.finite_difference, f"{model_family.name} forces")


def test_stress_is_strain_derivative(model_family, family_potential):
    _, step = FAMILY_STEPS[model_family.dtype]
    errors = stress_errors(family_potential, copper_aluminium(repeat=2, seed=6), step)
    assert_below(errors, model_family.finite_difference_stress, f"{model_family.name} stress")
