"""Check an exported metatomic model with the runtime venv only, and score it.

1. Load it with `metatomic.torch.load_atomistic_model` alone (no metatrain,
   no extensions directory): that is how the driver, LAMMPS plugin and tests
   load it, so a model needing a TorchScript extension fails here.
2. Print capabilities and neighbour-list requests.
3. Compare energies / forces / stresses with the EMT reference on an extxyz
   file through metatomic's own ASE calculator (the reference implementation).

With --variant V, score the model's `energy/V` variant against the reference
labels stored under `energy_V`, `forces_V`, `stress_V` (models/add_morse_labels.py).

Usage: python evaluate.py MODEL.pt [TEST.xyz] [--variant V]
"""

import argparse

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


def reference(atoms, variant=None):
    """Reference energy, forces and 3x3 stress of a frame: EMT's, or those of ``variant``."""
    if variant is None:
        return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    return (
        atoms.info[f"energy_{variant}"],
        atoms.arrays[f"forces_{variant}"],
        np.reshape(atoms.info[f"stress_{variant}"], (3, 3)),
    )


def score(model, path, variant=None):
    calc = MetatomicCalculator(model, device="cpu", variants={"energy": variant})
    ref = {"e": [], "f": [], "s": []}
    pred = {"e": [], "f": [], "s": []}
    for atoms in ase.io.read(path, ":"):
        n = len(atoms)
        energy, forces, stress = reference(atoms, variant)
        ref["e"].append(energy / n)
        ref["f"].append(forces)
        ref["s"].append(stress)
        atoms.calc = calc
        pred["e"].append(atoms.get_potential_energy() / n)
        pred["f"].append(atoms.get_forces())
        pred["s"].append(atoms.get_stress(voigt=False))

    def stats(key, factor):
        d = (np.concatenate([np.ravel(x) for x in pred[key]])
             - np.concatenate([np.ravel(x) for x in ref[key]])) * factor  # fmt: skip
        return np.abs(d).mean(), np.sqrt((d**2).mean())

    label = "" if variant is None else f", variant {variant!r}"
    print(f"held-out errors on {path} ({len(ref['e'])} structures{label}):")
    for label, key, factor, unit in [
        ("energy/atom", "e", 1000.0, "meV/atom"),
        ("forces     ", "f", 1000.0, "meV/A"),
        ("stress     ", "s", 1000.0, "meV/A^3"),
        ("stress     ", "s", EV_A3_TO_GPA, "GPa"),
    ]:
        mae, rmse = stats(key, factor)
        print(f"  {label} MAE {mae:8.3f}  RMSE {rmse:8.3f}  {unit}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("test", nargs="?", help="extxyz file with reference labels")
    parser.add_argument("--variant", help="score the energy/VARIANT output instead")
    args = parser.parse_args()
    model = load_atomistic_model(args.model)  # no extensions_directory on purpose
    describe(model)
    if args.test is not None:
        score(model, args.test, args.variant)
