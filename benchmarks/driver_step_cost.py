"""Per-step cost of the Python driver (neighbours + forward + backward), per preset.

    python benchmarks/driver_step_cost.py models/mace/mace-cual.pt --sizes 2 3 6 --steps 20

Each step moves the atoms a little (as MD does) and evaluates energy, forces and
virial. The first calls are warm-up and not counted.
"""

import argparse
import statistics
import time

import numpy as np
import torch

import mlipdrive
from mlipdrive.testing import copper_aluminium


def measure(path, settings, repeat, steps, warmup, threads):
    atoms = copper_aluminium(repeat=repeat, seed=0)
    potential = mlipdrive.load(path, settings={"preset": settings, "threads": threads})
    rng = np.random.default_rng(0)
    positions = atoms.positions.copy()
    times = []
    for step in range(warmup + steps):
        positions += rng.normal(scale=0.002, size=positions.shape)
        start = time.perf_counter()
        potential.compute(positions, atoms.numbers, atoms.cell.array, True)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return len(atoms), times, potential


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 6], help="repeats of a 4-atom cubic cell")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    print(f"{'atoms':>6} {'settings':>8} {'ms/step':>9} {'±':>6} {'speed-up':>8}  split (ms/step)")
    for repeat in args.sizes:
        baseline = None
        for settings in ("default", "turbo"):
            n_atoms, times, potential = measure(
                args.model, settings, repeat, args.steps, args.warmup, args.threads
            )
            median = statistics.median(times) * 1e3
            spread = statistics.pstdev(times) * 1e3
            baseline = baseline or median
            total_steps = args.steps + args.warmup
            split = " ".join(
                f"{phase}={seconds / total_steps * 1e3:.2f}"
                for phase, seconds in potential.timings.items()
            )
            print(f"{n_atoms:6d} {settings:>8} {median:9.2f} {spread:6.2f} {baseline / median:8.2f}x  {split}")


if __name__ == "__main__":
    main()
