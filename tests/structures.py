"""Structures and tolerances shared by the tests of every engine."""

import ase
import ase.build
import numpy as np

# named tolerances, float64 unless said otherwise
EXACT = 1e-12  # two implementations of the same formula
SAME_MODEL = 1e-10  # the same model through two engines
FLOAT32_ENERGY_PER_ATOM = 1e-4  # eV/atom, float32 vs float64 evaluation
FLOAT32_FORCES = 1e-3  # eV/Å


def argon(repeat=2, rattle=0.1, strain=0.05, seed=0) -> ase.Atoms:
    """A rattled fcc argon supercell in a random triclinic cell."""
    rng = np.random.default_rng(seed)
    atoms = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat(repeat)
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    deformation = np.eye(3) + strain * rng.uniform(-1, 1, size=(3, 3))
    atoms.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
    return atoms


def copper_aluminium(repeat=2, rattle=0.05, strain=0.02, seed=0) -> ase.Atoms:
    """A rattled, strained fcc CuAl random alloy, for the shipped MACE model."""
    rng = np.random.default_rng(seed)
    atoms = ase.build.bulk("Cu", "fcc", a=3.75, cubic=True).repeat(repeat)
    numbers = atoms.numbers.copy()
    numbers[rng.permutation(len(atoms))[: len(atoms) // 2]] = 13
    atoms.numbers = numbers
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    deformation = np.eye(3) + strain * rng.uniform(-1, 1, size=(3, 3))
    atoms.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
    return atoms


def random_rotation(seed=0) -> np.ndarray:
    """A random proper rotation matrix."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
