"""How close a model's non-conservative force and stress heads are to -dE/dr and the strain derivative.

Evaluates the model twice through metatomic's own ASE calculator: as
``MetatomicCalculator(model)`` (forces = -dE/dr, stress from the strain
derivative, by autograd) and as ``MetatomicCalculator(model,
non_conservative=True)`` (the ``non_conservative_force`` and
``non_conservative_stress`` outputs, no backward pass), on every frame of an
extxyz file and on the tests' 108-atom CuAl frame, and prints the differences
(per component: RMS, MAE, max) and the errors of both against the file's EMT
reference.

Usage (runtime venv): python nc_check.py MODEL.pt TEST.xyz [--extensions DIR]
"""

import argparse
import pathlib
import sys

import ase.io
import numpy as np
from metatomic_ase import MetatomicCalculator

from mlipdrive.extensions import import_extension_packages

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from structures import copper_aluminium  # noqa: E402  (the tests' structures)


def forces_and_stress(calc, atoms):
    """Forces (eV/A) and 3x3 stress (eV/A^3) of ``atoms`` through ``calc``."""
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_forces(), atoms.get_stress(voigt=False)


def summary(label, differences, unit):
    d = np.concatenate([np.ravel(x) for x in differences])
    print(
        f"  {label:34s} RMS {np.sqrt((d**2).mean()):.4f}  MAE {np.abs(d).mean():.4f}"
        f"  max {np.abs(d).max():.4f} {unit}"
    )


def compare(frames, conservative, direct, with_reference):
    """Print NC-vs-gradient differences (and errors against EMT) over ``frames``."""
    diff = {"f": [], "s": []}
    err = {"cf": [], "nf": [], "cs": [], "ns": []}
    for atoms in frames:
        cf, cs = forces_and_stress(conservative, atoms)
        nf, ns = forces_and_stress(direct, atoms)
        diff["f"].append(nf - cf)
        diff["s"].append(ns - cs)
        if with_reference:
            rf, rs = atoms.get_forces(), atoms.get_stress(voigt=False)
            err["cf"].append(cf - rf)
            err["nf"].append(nf - rf)
            err["cs"].append(cs - rs)
            err["ns"].append(ns - rs)
    summary("NC forces - (-dE/dr)", diff["f"], "eV/A")
    summary("NC stress - strain derivative", diff["s"], "eV/A^3")
    if with_reference:
        summary("conservative forces - EMT", err["cf"], "eV/A")
        summary("NC forces - EMT", err["nf"], "eV/A")
        summary("conservative stress - EMT", err["cs"], "eV/A^3")
        summary("NC stress - EMT", err["ns"], "eV/A^3")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("test", help="extxyz file with EMT forces and stress")
    parser.add_argument("--extensions", help="TorchScript extensions directory")
    args = parser.parse_args()
    if args.extensions is not None:
        # sphericart-torch registers the gradients of its operators in Python
        import_extension_packages(args.extensions)
    options = dict(extensions_directory=args.extensions, device="cpu")
    conservative = MetatomicCalculator(args.model, **options)
    direct = MetatomicCalculator(args.model, non_conservative=True, **options)

    frames = ase.io.read(args.test, ":")
    print(f"{args.test} ({len(frames)} structures, per component):")
    compare(frames, conservative, direct, with_reference=True)
    frame = copper_aluminium(repeat=3, rattle=0.1, strain=0.03)
    print("copper_aluminium(repeat=3, rattle=0.1, strain=0.03) (108 atoms, per component):")
    compare([frame], conservative, direct, with_reference=False)


if __name__ == "__main__":
    main()
