"""The Verlet-skin list, reused between rebuilds, gives a fresh list's answer:
exactly for the LJ models, within the family's tolerances for every shipped model."""

import numpy as np
import pytest

import mlipdrive
from structures import argon, copper_aluminium


def random_walk(path, structure, move, extensions=None):
    """12 steps of a random walk, each evaluated with a reused (skin 0.3 Å) and a
    fresh list: the largest differences (energy relative and per atom, forces,
    virial and virial per atom) and the volume per atom."""
    cached = mlipdrive.load(path, settings={"skin": 0.3}, extensions=extensions)
    fresh = mlipdrive.load(path, settings={"skin": 0.0}, extensions=extensions)
    atoms = structure(repeat=2, seed=2)
    rng = np.random.default_rng(1)
    positions = atoms.positions.copy()
    worst = dict.fromkeys(["energy", "energy/atom", "forces", "virial", "virial/atom"], 0.0)
    n = len(atoms)
    for _ in range(12):
        # a random walk: some steps stay inside skin/2, the accumulated ones do not
        positions += rng.uniform(-move, move, size=positions.shape)
        a = cached.compute(positions, atoms.numbers, atoms.cell.array, True)
        b = fresh.compute(positions, atoms.numbers, atoms.cell.array, True)
        found = {
            "energy": abs(a.energy - b.energy) / abs(b.energy),
            "energy/atom": abs(a.energy - b.energy) / n,
            "forces": float(np.abs(a.forces - b.forces).max()),
            "virial": float(np.abs(a.virial - b.virial).max()),
        }
        found["virial/atom"] = found["virial"] / n
        worst = {k: max(v, found[k]) for k, v in worst.items()}
    assert fresh.verlet.rebuilds == 12
    assert 1 < cached.verlet.rebuilds < 12
    return worst, atoms.get_volume() / n


@pytest.mark.parametrize("model_fixture", ["lj_model", "lj_model_full"])
def test_reused_list_equals_fresh_list_lj(request, model_fixture):
    worst, _ = random_walk(request.getfixturevalue(model_fixture), argon, 0.04)
    assert worst["energy"] < 1e-12, worst
    assert worst["forces"] < 1e-12, worst
    assert worst["virial"] < 1e-11, worst


def test_reused_list_equals_fresh_list(model_family):
    worst, atomic_volume = random_walk(
        model_family.path, copper_aluminium, 0.03, model_family.extensions
    )
    print(f"VERLET {model_family.name}: " + " ".join(f"{k}={v:.2e}" for k, v in worst.items()))
    assert worst["energy/atom"] < model_family.energy_per_atom, worst
    assert worst["forces"] < model_family.forces, worst
    # the family's stress tolerance as a virial per atom
    assert worst["virial/atom"] < model_family.stress * atomic_volume, worst


def test_cell_change_rebuilds(lj_model):
    potential = mlipdrive.load(lj_model, settings={"skin": 1.0})
    atoms = argon(seed=4)
    potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    potential.compute(atoms.positions, atoms.numbers, atoms.cell.array * 1.01, True)
    assert potential.verlet.rebuilds == 2
