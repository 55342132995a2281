"""Export the exact Lennard-Jones reference model as a metatomic ``.pt`` file.

    python models/lj/export_lj.py lj.pt --sigma 3.405 --epsilon 0.0104 --cutoff 8.5 --element Ar

Lengths are in Å and energies in eV. ``--unshifted`` matches LAMMPS's plain
``pair_style lj/cut``; the default (shifted) matches ASE's ``LennardJones``.
"""

import argparse
import pathlib
import sys

import ase.data
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
)

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from lj_model import LennardJones  # noqa: E402


def export_lj(
    path,
    *,
    sigma=3.405,
    epsilon=0.0104,
    cutoff=8.5,
    shifted=True,
    full_list=False,
    elements=("Ar",),
    dtype="float64",
):
    """Write the LJ model to ``path`` and return it as an ``AtomisticModel``."""
    types = [ase.data.atomic_numbers[element] for element in elements]
    model = LennardJones(sigma, epsilon, cutoff, shifted, full_list).eval()
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=types,
        interaction_range=cutoff,
        length_unit="angstrom",
        supported_devices=["cpu", "cuda"],
        dtype=dtype,
    )
    metadata = ModelMetadata(
        name="mlipdrive-lj",
        description=(
            f"Lennard-Jones sigma={sigma} A epsilon={epsilon} eV cutoff={cutoff} A "
            f"{'shifted' if shifted else 'unshifted'}, "
            f"{'full' if full_list else 'half'} neighbour list, types {types}"
        ),
    )
    atomistic = AtomisticModel(model, metadata, capabilities)
    atomistic.save(str(path))
    return atomistic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="path of the .pt file to write")
    parser.add_argument("--sigma", type=float, default=3.405, help="Å")
    parser.add_argument("--epsilon", type=float, default=0.0104, help="eV")
    parser.add_argument("--cutoff", type=float, default=8.5, help="Å")
    parser.add_argument("--unshifted", action="store_true", help="no energy shift at rc")
    parser.add_argument("--full-list", action="store_true", help="ask for a full list")
    parser.add_argument("--element", nargs="+", default=["Ar"], help="element symbols")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = parser.parse_args()
    export_lj(
        args.output,
        sigma=args.sigma,
        epsilon=args.epsilon,
        cutoff=args.cutoff,
        shifted=not args.unshifted,
        full_list=args.full_list,
        elements=args.element,
        dtype=args.dtype,
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
