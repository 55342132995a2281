"""Cost of one energy + forces + stress evaluation of a model, as the model cards quote it.

Times metatomic's own ASE calculator (``metatomic_ase.MetatomicCalculator``) on
the 108-atom rattled, strained CuAl frame of the tests
(``tests/structures.py``: ``copper_aluminium(repeat=3, rattle=0.1, strain=0.03)``), one
torch thread, new positions before every call (so nothing is cached): wall
and CPU time per call, median over ``--steps`` calls after ``--warmup``.

With ``--extensions DIR`` holding sphericart-torch, ``sphericart.torch`` is
imported from there first (it registers the gradients of its operators).

With ``--non-conservative``, forces and stress come from the model's
``non_conservative_force``/``non_conservative_stress`` outputs (no backward
pass), as ``MetatomicCalculator(..., non_conservative=True)`` takes them. A
model with a per-atom ``energy_uncertainty`` also computes it every step (the
calculator's uncertainty check, on by default); ``--no-uncertainty`` turns it
off (``uncertainty_threshold=None``).

Usage (runtime venv): OMP_NUM_THREADS=1 python models/time_step.py MODEL.pt
    [--extensions DIR] [--non-conservative] [--no-uncertainty] [--repeat 3]
    [--steps 40] [--warmup 10]
"""

import argparse
import pathlib
import sys
import time

import numpy as np
import torch
from metatomic_ase import MetatomicCalculator

from mlipdrive.extensions import import_extension_packages

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from structures import copper_aluminium  # noqa: E402  (the tests' structures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--extensions", default=None, help="TorchScript extensions directory")
    parser.add_argument(
        "--non-conservative", action="store_true", help="forces and stress from the NC heads"
    )
    parser.add_argument(
        "--no-uncertainty", action="store_true", help="no energy-uncertainty check"
    )
    parser.add_argument("--repeat", type=int, default=3, help="fcc cells per side (3: 108 atoms)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    torch.set_num_threads(1)
    if args.extensions is not None:
        # sphericart-torch 2.0 registers the autograd of its operators in Python
        # only: without this import the backward pass skips their gradient
        # (wrong forces, and a cheaper step). See models/soap_bpnn/MODEL_CARD.md.
        import_extension_packages(args.extensions)
    atoms = copper_aluminium(repeat=args.repeat, rattle=0.1, strain=0.03)
    calc = MetatomicCalculator(
        args.model,
        extensions_directory=args.extensions,
        device="cpu",
        non_conservative=args.non_conservative,
        uncertainty_threshold=None if args.no_uncertainty else 0.1,
    )
    wall, cpu = [], []
    for _ in range(args.warmup + args.steps):
        atoms.positions[0, 0] += 1e-4  # new positions: a real evaluation every call
        t0, c0 = time.perf_counter(), time.process_time()
        calc.calculate(atoms, ["energy", "forces", "stress"], ["positions"])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    w = 1e3 * np.array(wall[args.warmup:])
    c = 1e3 * np.array(cpu[args.warmup:])
    print(
        f"{args.model}: {len(atoms)} atoms, energy+forces+stress"
        f"{' (non-conservative)' if args.non_conservative else ''}"
        f"{' (no uncertainty check)' if args.no_uncertainty else ''}, 1 thread: "
        f"wall {np.median(w):.1f} ms/step (min {w.min():.1f}), "
        f"CPU {np.median(c):.1f} ms/step; first call {1e3 * wall[0]:.0f} ms"
    )


if __name__ == "__main__":
    main()
