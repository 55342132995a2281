"""The energy-uncertainty check's cost in the Python core, interleaved on one structure.

    .venv/bin/python tools/parity/uncertainty_cost.py MODEL.pt [--repeat 6] [--rounds 10]

Alternates ``Potential.compute`` (energy, forces, stress) with the check off and
on (the default threshold) on a rattled fcc Cu/Al crystal, so that the load of
a shared machine hits both alike; prints the median ms per evaluation of each,
their ratio, and the check alone (``Potential.timings['uncertainty check']``),
without the model's uncertainty head.
"""

import argparse
import pathlib
import statistics
import sys
import time

import mlipdrive

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from structures import copper_aluminium  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--repeat", type=int, default=6, help="fcc cells per edge (4 atoms each)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    atoms = copper_aluminium(repeat=args.repeat, rattle=0.05, strain=0.02)
    structure = (atoms.positions, atoms.numbers, atoms.cell.array, True)
    potentials = {
        "off": mlipdrive.load(args.model, settings={"uncertainty_threshold": "off"}),
        "on": mlipdrive.load(args.model),
    }
    times = {name: [] for name in potentials}
    for _ in range(2):  # warm-up (TorchScript profiling runs)
        for potential in potentials.values():
            potential.compute(*structure)
    for _ in range(args.rounds):
        for name, potential in potentials.items():
            start = time.perf_counter()
            potential.compute(*structure)
            times[name].append(1000 * (time.perf_counter() - start))
    off, on = (statistics.median(times[name]) for name in ("off", "on"))
    check = potentials["on"]
    alone = 1000 * check.timings["uncertainty check"] / check.evaluations
    print(f"`{' '.join(sys.argv)}`: {len(atoms)} atoms, median of {args.rounds} interleaved "
          f"evaluations: check off {off:.1f} ms, on {on:.1f} ms (x{on / off:.3f}); the check "
          f"alone {alone:.3f} ms")


if __name__ == "__main__":
    main()
