"""The Verlet-skin list, reused between rebuilds, gives exactly a fresh list's answer."""

import numpy as np
import pytest

import mlipdrive
from mlipdrive.testing import argon, copper_aluminium


@pytest.mark.parametrize(
    "model_fixture,structure,move",
    [("lj_model", argon, 0.04), ("lj_model_full", argon, 0.04), ("mace_model", copper_aluminium, 0.03)],
)
def test_reused_list_equals_fresh_list(request, model_fixture, structure, move):
    path = request.getfixturevalue(model_fixture)
    cached = mlipdrive.load(path, settings={"skin": 0.3})
    fresh = mlipdrive.load(path, settings={"skin": 0.0})
    atoms = structure(repeat=2, seed=2)
    rng = np.random.default_rng(1)
    positions = atoms.positions.copy()
    for _ in range(12):
        # a random walk: some steps stay inside skin/2, the accumulated ones do not
        positions += rng.uniform(-move, move, size=positions.shape)
        a = cached.compute(positions, atoms.numbers, atoms.cell.array, True)
        b = fresh.compute(positions, atoms.numbers, atoms.cell.array, True)
        assert abs(a.energy - b.energy) < 1e-12 * abs(b.energy)
        np.testing.assert_allclose(a.forces, b.forces, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.virial, b.virial, rtol=0, atol=1e-11)
    assert fresh.verlet.rebuilds == 12
    assert 1 < cached.verlet.rebuilds < 12


def test_cell_change_rebuilds(lj_model):
    potential = mlipdrive.load(lj_model, settings={"skin": 1.0})
    atoms = argon(seed=4)
    potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    potential.compute(atoms.positions, atoms.numbers, atoms.cell.array * 1.01, True)
    assert potential.verlet.rebuilds == 2
