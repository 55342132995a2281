"""Where metatomic's energy-uncertainty warning fires for pet-cual-llpr.pt: near vs far structures.

metatomic's ASE calculator (``metatomic_ase.MetatomicCalculator``) warns when
any per-atom ``energy_uncertainty`` passes ``uncertainty_threshold`` (default
0.1 eV). This script gives the structures that the tests reuse:

* :func:`near_structure`: the tests' 108-atom rattled, strained fcc CuAl frame
  (``copper_aluminium(repeat=3, rattle=0.1, strain=0.03)`` of tests/structures.py),
  like the training data: the warning must NOT fire;
* :func:`far_structures`: the same frame compressed to 80 % of its lattice
  constant (nearest neighbours ~2.1 A, none closer than ~2.3 A in training),
  a Cu-Al dimer in vacuum and random positions in a periodic box: the warning
  must fire on each.

and, for one structure, the per-atom uncertainties (:func:`per_atom_uncertainty`)
and whether the calculator warns (:func:`warning_fires`).

Usage (runtime venv): python uncertainty_check.py [MODEL.pt] [--variant V]
Prints per-atom uncertainties (eV: max, median, min) and whether the warning
fired; exit status 1 if it fired near or stayed silent far.
"""

import argparse
import pathlib
import sys
import warnings

import ase
import numpy as np
from metatomic.torch import ModelOutput
from metatomic_ase import MetatomicCalculator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from structures import copper_aluminium  # noqa: E402  (the tests' structures)

MODEL = pathlib.Path(__file__).resolve().parent / "pet-cual-llpr.pt"
THRESHOLD = 0.1  # eV per atom: metatomic's default uncertainty_threshold
WARNING = "atomic energy uncertainties are larger than the threshold"


def near_structure() -> ase.Atoms:
    """The tests' 108-atom CuAl frame: inside the training distribution."""
    return copper_aluminium(repeat=3, rattle=0.1, strain=0.03)


def far_structures() -> dict:
    """Structures far from the training data, by name."""
    compressed = near_structure()
    compressed.set_cell(0.8 * compressed.cell.array, scale_atoms=True)
    dimer = ase.Atoms("CuAl", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]], pbc=False)
    rng = np.random.default_rng(0)
    box = 10.0  # A: 64 atoms at ~fcc density, placed anywhere (overlaps included)
    random = ase.Atoms(
        numbers=rng.choice([13, 29], size=64),
        positions=rng.uniform(0.0, box, size=(64, 3)),
        cell=[box, box, box],
        pbc=True,
    )
    return {"compressed": compressed, "dimer": dimer, "random": random}


def _uncertainty_name(variant):
    return "energy_uncertainty" if variant is None else f"energy_uncertainty/{variant}"


def per_atom_uncertainty(model, atoms, variant=None) -> np.ndarray:
    """The model's per-atom energy uncertainty (eV) for ``atoms``."""
    calc = MetatomicCalculator(model, device="cpu", variants={"energy": variant})
    outputs = calc.run_model(atoms, {_uncertainty_name(variant): ModelOutput(sample_kind="atom")})
    return outputs[_uncertainty_name(variant)].block().values.detach().numpy().ravel()


def warning_fires(model, atoms, variant=None, threshold=THRESHOLD) -> bool:
    """Whether metatomic's ASE calculator warns about the uncertainty of ``atoms``."""
    atoms = atoms.copy()
    atoms.calc = MetatomicCalculator(
        model, device="cpu", variants={"energy": variant}, uncertainty_threshold=threshold
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        atoms.get_potential_energy()
    return any(WARNING in str(w.message) for w in caught)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default=str(MODEL))
    parser.add_argument("--variant", help="check energy_uncertainty/VARIANT instead")
    args = parser.parse_args()
    cases = {"near": near_structure(), **far_structures()}
    ok = True
    for name, atoms in cases.items():
        sigma = per_atom_uncertainty(args.model, atoms, args.variant)
        fired = warning_fires(args.model, atoms, args.variant)
        expected = name != "near"
        ok &= fired == expected
        print(
            f"{name:10s} {len(atoms):4d} atoms: per-atom uncertainty max {sigma.max():.4f}"
            f" median {np.median(sigma):.4f} min {sigma.min():.4f} eV;"
            f" warning (threshold {THRESHOLD} eV) {'fired' if fired else 'silent'}"
            f"{'' if fired == expected else '  <-- UNEXPECTED'}"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
