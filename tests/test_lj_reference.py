"""The exact LJ model through mlipdrive == ASE's LennardJones, to round-off."""

import numpy as np
import pytest
from ase.calculators.lj import LennardJones

import mlipdrive
from structures import EXACT, argon

from conftest import LJ_CUTOFF, LJ_EPSILON, LJ_SIGMA


def ase_reference(atoms):
    atoms = atoms.copy()
    atoms.calc = LennardJones(sigma=LJ_SIGMA, epsilon=LJ_EPSILON, rc=LJ_CUTOFF)
    return (
        atoms.get_potential_energy(),
        atoms.get_forces(),
        atoms.get_stress(voigt=False),
        atoms.get_potential_energies(),
    )


@pytest.mark.parametrize("model_fixture", ["lj_model", "lj_model_full"])
@pytest.mark.parametrize(
    "repeat,seed",
    [(2, 0), (2, 1), (1, 2)],  # repeat=1: cell (~5.3 Å) smaller than 2 x cutoff (17 Å)
)
def test_lj_matches_ase(request, model_fixture, repeat, seed):
    potential = mlipdrive.load(request.getfixturevalue(model_fixture))
    atoms = argon(repeat=repeat, seed=seed)
    energy, forces, stress, energies = ase_reference(atoms)

    results = potential.compute(
        atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc, per_atom=True
    )

    scale = abs(energy)
    assert abs(results.energy - energy) < EXACT * scale
    np.testing.assert_allclose(results.forces, forces, rtol=0, atol=EXACT * scale)
    np.testing.assert_allclose(results.stress, stress, rtol=0, atol=EXACT * scale)
    np.testing.assert_allclose(results.energies, energies, rtol=0, atol=EXACT * scale)


def test_selected_atoms_sum_to_total(lj_model):
    potential = mlipdrive.load(lj_model)
    atoms = argon(seed=3)
    total = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    half = np.arange(0, len(atoms), 2)
    other = np.arange(1, len(atoms), 2)
    first = potential.compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True, selected_atoms=half,
        per_atom=True,
    )
    second = potential.compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True, selected_atoms=other
    )
    assert abs(first.energy + second.energy - total.energy) < EXACT * abs(total.energy)
    assert first.energies.shape == (len(half),)
    assert abs(first.energies.sum() - first.energy) < EXACT * abs(total.energy)
