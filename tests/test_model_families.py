"""Every shipped reference model (MACE float64, PET float32, SOAP-BPNN float64 with
a TorchScript extension): mlipdrive == metatomic's own ASE calculator within the
family's tolerances, and forces == -dE/dr by central differences."""

import subprocess
import sys

import numpy as np
import pytest
from metatomic_ase import MetatomicCalculator
from model_families import MODEL_FAMILIES

import mlipdrive
from mlipdrive.testing import copper_aluminium


def frame():
    """The 108-atom rattled, strained CuAl frame the tolerances were measured on."""
    return copper_aluminium(repeat=3, rattle=0.1, strain=0.03)


@pytest.fixture(scope="module")
def potential(model_family):
    return mlipdrive.load(model_family.path, extensions=model_family.extensions)


def test_declares_what_the_family_says(model_family, potential):
    assert potential.exported_dtype == model_family.dtype
    assert potential.interaction_range == pytest.approx(model_family.interaction_range)


def test_matches_metatomic_calculator(model_family, potential):
    atoms = frame()
    ours = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)
    atoms.calc = MetatomicCalculator(
        model_family.path, extensions_directory=model_family.extensions
    )
    n = len(atoms)
    assert abs(ours.energy - atoms.get_potential_energy()) / n < model_family.energy_per_atom
    np.testing.assert_allclose(
        ours.forces, atoms.get_forces(), rtol=0, atol=model_family.forces
    )
    # ASE keeps the symmetric part (Voigt); mlipdrive returns the full 3x3, whose
    # antisymmetric part is not zero for a model that is not exactly rotation
    # invariant (PET: ~3e-5 eV/Å³ here)
    symmetric = 0.5 * (ours.stress + ours.stress.T)
    np.testing.assert_allclose(
        symmetric, atoms.get_stress(voigt=False), rtol=0, atol=model_family.stress
    )


def test_forces_are_energy_gradient(model_family, potential):
    atoms = frame()
    forces = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True).forces
    # float64: h = 1e-4 Å (truncation ~1e-8 eV/Å); float32: energies carry ~1e-6 eV
    # of round-off, so a larger step (truncation ~h² F''' dominates the tolerance)
    step = 1e-4 if model_family.dtype == "float64" else 1e-2

    def energy(positions):
        return potential.compute(
            positions, atoms.numbers, atoms.cell.array, True, forces=False, stress=False
        ).energy

    for atom in np.random.default_rng(0).choice(len(atoms), size=2, replace=False):
        for axis in range(3):
            plus, minus = atoms.positions.copy(), atoms.positions.copy()
            plus[atom, axis] += step
            minus[atom, axis] -= step
            numeric = -(energy(plus) - energy(minus)) / (2 * step)
            assert abs(numeric - forces[atom, axis]) < model_family.finite_difference, (
                atom, axis, numeric, forces[atom, axis],
            )


# In a fresh process: forces of the SOAP-BPNN model from mlipdrive.load alone, then
# after importing sphericart.torch (which registers its operators' gradients).
UNREGISTERED = """
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
import mlipdrive
from mlipdrive.testing import copper_aluminium
path, extensions = sys.argv[1:3]
atoms = copper_aluminium(repeat=2, rattle=0.1, strain=0.03)
def forces():
    potential = mlipdrive.load(path, extensions=extensions)
    return potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True).forces
plain = forces()
sys.path.append(extensions)
import sphericart.torch
print(np.abs(forces() - plain).max())
"""


def test_extension_gradients_need_no_python_import():
    """mlipdrive.load imports the Python package of the model's extensions
    (sphericart-torch registers its gradients there): a fresh process gets the
    same forces before and after importing it by hand."""
    family = MODEL_FAMILIES["soap_bpnn"]
    if not family.path.is_file() or not family.extensions.is_dir():
        pytest.skip("SOAP-BPNN model or .venv/extensions missing")
    done = subprocess.run(
        [sys.executable, "-c", UNREGISTERED, str(family.path), str(family.extensions)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    difference = float(done.stdout.split()[-1])
    assert difference < family.forces, f"forces change by {difference} eV/A"
