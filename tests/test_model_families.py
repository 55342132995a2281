"""Every shipped reference model (MACE float64, PET float32, SOAP-BPNN float64 with
a TorchScript extension) declares what its family row says, and the extension's
autograd formulas reach a fresh process."""

import subprocess
import sys

import pytest
from model_families import MODEL_FAMILIES

import mlipdrive


@pytest.fixture(scope="module")
def potential(model_family):
    return mlipdrive.load(model_family.path, extensions=model_family.extensions)


def test_declares_what_the_family_says(model_family, potential):
    assert potential.exported_dtype == model_family.dtype
    assert potential.interaction_range == pytest.approx(model_family.interaction_range)


# mlipdrive against metatomic's own ASE calculator (on the 108-atom frame the
# tolerances were measured on, among others) and the finite-difference checks run
# over every family in test_model_reference.py and test_finite_differences.py.


# In a fresh process: forces of the SOAP-BPNN model from mlipdrive.load alone, then
# after importing sphericart.torch (which registers its operators' gradients).
UNREGISTERED = """
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
import mlipdrive
from structures import copper_aluminium
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
