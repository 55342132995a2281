"""Add a second, independent set of reference labels to the EMT data set: a Morse pair potential.

The models with output variants (models/pet_llpr, models/soap_bpnn_nc) learn
two references for the same structures: EMT (the data set's own
`energy`/`forces`/`stress`, the default variant of every output) and this
Morse potential (the `morse` variant: `energy/morse`, ...). Both come from ASE
calculators, offline, deterministically.

Morse parameters: Girifalco & Weizer's copper fit (Phys. Rev. 114, 687
(1959)): depth 0.3429 eV, minimum 2.866 A, exponent 1.3588 / A (ASE's
rho0 = 1.3588 * 2.866 = 3.894), used for every pair (Cu-Cu, Cu-Al, Al-Al)
alike: a second, clearly different reference, not a fit of Al. The pair energy
is switched off smoothly between 4.0 and 4.5 A (ASE's quintic `fcut`) so that
it lies inside the model's 4.5 A cutoff.

Writes, next to EMT's labels: info `energy_morse` (eV), arrays
`forces_morse` (eV/A), info `stress_morse` (3x3 as 9 numbers, eV/A^3, ASE sign).

Usage: python add_morse_labels.py DATA_DIR   (rewrites train/val/test.xyz in place)
"""

import argparse
import os

import ase.io
from ase.calculators.morse import MorsePotential

R0 = 2.866  # A
MORSE = dict(epsilon=0.3429, r0=R0, rho0=1.3588 * R0, rcut1=4.0 / R0, rcut2=4.5 / R0)


def label(atoms, calc):
    """Return the EMT frame with the Morse energy, forces and stress added as extra keys."""
    frame = atoms.copy()
    frame.calc = calc
    energy = frame.get_potential_energy()
    forces = frame.get_forces()
    stress = frame.get_stress(voigt=False)
    atoms.info["energy_morse"] = energy
    atoms.arrays["forces_morse"] = forces
    atoms.info["stress_morse"] = stress.reshape(9)  # flat: extxyz keeps it an array
    return atoms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir")
    args = parser.parse_args()
    calc = MorsePotential(**MORSE)
    for name in ("train", "val", "test"):
        path = os.path.join(args.data_dir, f"{name}.xyz")
        frames = [label(atoms, calc) for atoms in ase.io.read(path, ":")]
        ase.io.write(path, frames, format="extxyz")
        e = [f.info["energy_morse"] / len(f) for f in frames]
        print(f"{path}: Morse E/atom {min(e):.3f}..{max(e):.3f} eV")


if __name__ == "__main__":
    main()
