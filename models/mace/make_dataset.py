"""Generate the Cu/Al training data for the shipped test MACE model.

Reference energies, forces and stresses come from ASE's EMT calculator, which
is fast, deterministic and available everywhere: the point is a small,
reproducible model that behaves like a real MLIP (many-body, message passing,
periodic cells, stress), not physical accuracy.

Structures: fcc and bcc Cu, Al, random CuAl alloys, and ordered L1_2 Cu3Al,
L1_2 CuAl3, L1_0 CuAl and B2 CuAl, in supercells of 16-40 atoms. Each one is
strained (random symmetric deformation, every component within +-3%, i.e.
volume changes and shear) and rattled (Gaussian noise, sigma 0.05-0.15 A).

Output: train/val/test extxyz files with `energy` (eV), `forces` (eV/A) and
`stress` (eV/A^3, ASE sign convention = (1/V) dE/dstrain, which is what
metatrain's ASE reader expects under the `stress` key).

Usage: python make_dataset.py [OUTDIR] [--seed 0] [--sizes 300 50 50]
"""

import argparse
import os

import ase.io
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

# EMT-ish equilibrium lattice constants (A); alloys use Vegard's law.
A_FCC = {"Cu": 3.61, "Al": 4.05}
A_BCC = {"Cu": 2.87, "Al": 3.24}


def unit_cell(kind, rng):
    """Return a small conventional cell for one structure kind."""
    if kind in ("fcc-Cu", "fcc-Al", "bcc-Cu", "bcc-Al"):
        lattice, element = kind.split("-")
        a = (A_FCC if lattice == "fcc" else A_BCC)[element]
        return bulk(element, lattice, a=a, cubic=True)
    if kind in ("fcc-CuAl", "bcc-CuAl"):  # random alloy, Cu fraction in [0.2, 0.8]
        lattice = kind.split("-")[0]
        table = A_FCC if lattice == "fcc" else A_BCC
        x = rng.uniform(0.2, 0.8)
        a = x * table["Cu"] + (1 - x) * table["Al"]
        atoms = bulk("Cu", lattice, a=a, cubic=True)
        atoms.info["cu_fraction"] = x  # applied after the supercell is built
        return atoms
    if kind in ("L12-Cu3Al", "L12-CuAl3", "L10-CuAl"):
        minority, majority = {
            "L12-Cu3Al": ("Al", "Cu"),
            "L12-CuAl3": ("Cu", "Al"),
            "L10-CuAl": ("Al", "Cu"),
        }[kind]
        frac = {"L12-Cu3Al": 0.75, "L12-CuAl3": 0.25, "L10-CuAl": 0.5}[kind]
        a = frac * A_FCC["Cu"] + (1 - frac) * A_FCC["Al"]
        atoms = bulk(majority, "fcc", a=a, cubic=True)  # sites (0,0,0) + 3 faces
        symbols = atoms.get_chemical_symbols()
        symbols[0] = minority  # L1_2: corner site is the minority element
        if kind == "L10-CuAl":
            symbols[3] = minority  # L1_0: sites 0 and 3 form the z=0 plane
        atoms.set_chemical_symbols(symbols)
        return atoms
    if kind == "B2-CuAl":
        a = 0.5 * (A_BCC["Cu"] + A_BCC["Al"])
        atoms = bulk("Cu", "bcc", a=a, cubic=True)
        atoms.set_chemical_symbols(["Cu", "Al"])
        return atoms
    raise ValueError(kind)


KINDS = [
    "fcc-Cu", "fcc-Al", "bcc-Cu", "bcc-Al", "fcc-CuAl", "bcc-CuAl",
    "L12-Cu3Al", "L12-CuAl3", "L10-CuAl", "B2-CuAl",
]  # fmt: skip

# diagonal repetitions giving 16-40 atoms for 4-atom (fcc) / 2-atom (bcc) cells
REPEATS = {
    4: [(2, 2, 1), (2, 2, 2), (3, 3, 1), (3, 2, 1), (3, 1, 3)],
    2: [(2, 2, 2), (3, 2, 2), (2, 2, 4), (3, 3, 2), (4, 2, 2)],
}


def make_structure(rng):
    kind = KINDS[rng.integers(len(KINDS))]
    cell = unit_cell(kind, rng)
    reps = REPEATS[len(cell)]
    atoms = cell.repeat(reps[rng.integers(len(reps))])

    if "cu_fraction" in cell.info:
        atoms.info.pop("cu_fraction")
        is_cu = rng.random(len(atoms)) < cell.info["cu_fraction"]
        if is_cu.all() or not is_cu.any():  # keep it an alloy
            is_cu[rng.integers(len(atoms))] ^= True
        atoms.set_chemical_symbols(np.where(is_cu, "Cu", "Al"))

    # random symmetric strain, all 6 independent components in [-3%, 3%]
    eps = rng.uniform(-0.03, 0.03, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)

    sigma = rng.uniform(0.05, 0.15)
    atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
    atoms.wrap()
    atoms.info["config_type"] = kind

    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=True)  # eV/A^3, ASE convention
    atoms.calc = SinglePointCalculator(
        atoms, energy=energy, forces=forces, stress=stress
    )
    return atoms


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outdir", nargs="?", default=".")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs=3, default=[300, 50, 50])
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    for name, n in zip(["train", "val", "test"], args.sizes):
        frames = [make_structure(rng) for _ in range(n)]
        path = os.path.join(args.outdir, f"{name}.xyz")
        ase.io.write(path, frames, format="extxyz")
        natoms = [len(f) for f in frames]
        e = [f.get_potential_energy() / len(f) for f in frames]
        print(
            f"{path}: {n} structures, {min(natoms)}-{max(natoms)} atoms, "
            f"E/atom {min(e):.3f}..{max(e):.3f} eV"
        )


if __name__ == "__main__":
    main()
