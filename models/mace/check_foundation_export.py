"""End-to-end check of models/export_foundation_mace.sh without downloading.

Foundation weights cannot be fetched here, so build a small mace-torch
`ScaleShiftMACE` (the class of the MACE-MP foundation models, with non-zero
E0s and scale/shift), save it the way mace-torch saves `*.model` files
(`torch.save` of the whole module), export it with the script, and check that
metatomic's ASE calculator on the exported `.pt` reproduces mace-torch's own
`MACECalculator` on the original file (energy, forces, stress).

Run with the metatrain venv (it has mace-torch and metatomic-ase):
  .venv-metatrain/bin/python models/mace/check_foundation_export.py
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from ase.build import bulk
from mace import modules  # before e3nn: mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
from mace.calculators import MACECalculator
from e3nn import o3  # noqa: I001
from metatomic_ase import MetatomicCalculator

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "export_foundation_mace.sh")

torch.set_default_dtype(torch.float64)
torch.manual_seed(0)
z = [8, 13, 29]  # O, Al, Cu: the first one (O) is used for the dummy data set
model = modules.ScaleShiftMACE(
    r_max=4.5,
    num_bessel=8,
    num_polynomial_cutoff=5,
    max_ell=2,
    interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
    interaction_cls_first=modules.interaction_classes[
        "RealAgnosticResidualInteractionBlock"
    ],
    num_interactions=2,
    num_elements=len(z),
    hidden_irreps=o3.Irreps("8x0e + 8x1o"),
    MLP_irreps=o3.Irreps("8x0e"),
    atomic_energies=np.array([-4.9, -3.7, -3.1]),
    avg_num_neighbors=30.0,
    atomic_numbers=z,
    correlation=2,
    gate=torch.nn.functional.silu,
    radial_MLP=[16, 16],
    atomic_inter_scale=0.7,
    atomic_inter_shift=-0.05,
)

with tempfile.TemporaryDirectory() as tmp:
    mace_file = os.path.join(tmp, "tiny.model")
    out = os.path.join(tmp, "tiny.pt")
    torch.save(model, mace_file)
    subprocess.run(["bash", SCRIPT, mace_file, out], check=True)

    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))
    atoms.symbols[::3] = "Al"
    atoms.rattle(0.1, seed=1)

    results = {}
    for name, calc in [
        ("mace-torch", MACECalculator(model_paths=mace_file, device="cpu",
                                      default_dtype="float64")),  # fmt: skip
        ("metatomic", MetatomicCalculator(out, device="cpu")),
    ]:
        atoms.calc = calc
        results[name] = (
            atoms.get_potential_energy(),
            atoms.get_forces(),
            atoms.get_stress(),
        )

ref, new = results["mace-torch"], results["metatomic"]
de = abs(ref[0] - new[0])
df = np.abs(ref[1] - new[1]).max()
ds = np.abs(ref[2] - new[2]).max()
print(f"energy mace-torch {ref[0]:.10f} eV, metatomic {new[0]:.10f} eV")
print(f"|dE| = {de:.2e} eV, max|dF| = {df:.2e} eV/A, max|dS| = {ds:.2e} eV/A^3")
ok = de < 1e-8 and df < 1e-8 and ds < 1e-8
print("OK" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
