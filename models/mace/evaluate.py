"""Check an exported metatomic model with the runtime venv only, and score it.

1. Load it with `metatomic.torch.load_atomistic_model` alone (no metatrain,
   no extensions directory): that is how the driver, LAMMPS plugin and tests
   load it, so a model needing a TorchScript extension fails here.
2. Print capabilities and neighbour-list requests.
3. Compare energies / forces / stresses with the EMT reference on an extxyz
   file through metatomic's own ASE calculator (the reference implementation).

Usage: python evaluate.py MODEL.pt TEST.xyz
"""

import sys

import ase.io
import numpy as np
from metatomic.torch import load_atomistic_model
from metatomic_ase import MetatomicCalculator

EV_A3_TO_GPA = 160.21766208


def describe(model):
    caps = model.capabilities()
    print("capabilities:")
    print("  atomic_types     ", caps.atomic_types)
    print("  length_unit      ", caps.length_unit)
    for name, out in caps.outputs.items():
        print(f"  output {name!r}: unit={out.unit!r}, sample_kind={out.sample_kind!r}")
    print("  interaction_range", caps.interaction_range)
    print("  dtype            ", caps.dtype)
    print("  supported_devices", caps.supported_devices)
    print("requested_neighbor_lists:")
    for nl in model.requested_neighbor_lists():
        print(f"  cutoff={nl.cutoff} full_list={nl.full_list} strict={nl.strict}")


def score(model, path):
    calc = MetatomicCalculator(model, device="cpu")
    ref = {"e": [], "f": [], "s": []}
    pred = {"e": [], "f": [], "s": []}
    for atoms in ase.io.read(path, ":"):
        n = len(atoms)
        ref["e"].append(atoms.get_potential_energy() / n)
        ref["f"].append(atoms.get_forces())
        ref["s"].append(atoms.get_stress(voigt=False))
        atoms.calc = calc
        pred["e"].append(atoms.get_potential_energy() / n)
        pred["f"].append(atoms.get_forces())
        pred["s"].append(atoms.get_stress(voigt=False))

    def stats(key, factor):
        d = (np.concatenate([np.ravel(x) for x in pred[key]])
             - np.concatenate([np.ravel(x) for x in ref[key]])) * factor  # fmt: skip
        return np.abs(d).mean(), np.sqrt((d**2).mean())

    print(f"held-out errors on {path} ({len(ref['e'])} structures):")
    for label, key, factor, unit in [
        ("energy/atom", "e", 1000.0, "meV/atom"),
        ("forces     ", "f", 1000.0, "meV/A"),
        ("stress     ", "s", 1000.0, "meV/A^3"),
        ("stress     ", "s", EV_A3_TO_GPA, "GPa"),
    ]:
        mae, rmse = stats(key, factor)
        print(f"  {label} MAE {mae:8.3f}  RMSE {rmse:8.3f}  {unit}")


if __name__ == "__main__":
    model = load_atomistic_model(sys.argv[1])  # no extensions_directory on purpose
    describe(model)
    if len(sys.argv) > 2:
        score(model, sys.argv[2])
