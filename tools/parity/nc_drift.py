"""``non_conservative on`` against off in LAMMPS: ms per step and NVE energy drift.

    .venv/bin/python tools/parity/nc_drift.py MODEL.pt [--extensions DIR]
        [--repeat 5] [--steps 2000] [--ranks 1] [--output FILE.md]

Runs the same NVE trajectory start (a rattled, strained fcc Cu/Al crystal,
``copper_aluminium`` of ``tests/structures.py``, thermal velocities at 300 K, 1 fs)
with the model's forces from the energy's gradient (``non_conservative off``)
and from its force and stress heads (``on``), and reports the ms per step
(LAMMPS's loop time, and the plugin's forward/backward split) and the drift of
the total energy (least-squares slope, meV/atom/ps). The harness (``mlipdrive
bench``) measures the same for models without TorchScript extensions.
"""

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

import ase.io
import numpy as np

from mlipdrive.lammps import lmp_command, lmp_environment

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from structures import copper_aluminium  # noqa: E402

INPUT = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlipdrive {model} non_conservative {mode} {extensions}
pair_coeff * * Al Cu
velocity all create 300 4928459 mom yes rot no dist gaussian
timestep 0.001
fix 1 all nve
thermo_style custom step time etotal pe ke
thermo_modify format float %.12g
thermo 10
run {steps}
"""


def run(directory: pathlib.Path, model, mode, steps, extensions, ranks) -> dict:
    """One NVE run; its ms/step, the plugin's split and the energy drift."""
    directory.mkdir(parents=True, exist_ok=True)
    option = f"extensions {pathlib.Path(extensions).resolve()}" if extensions else ""
    (directory / "in.nve").write_text(
        INPUT.format(model=model, mode=mode, steps=steps, extensions=option)
    )
    done = subprocess.run(
        lmp_command("in.nve", ranks, ["-log", "log.lammps"]), cwd=directory,
        env=lmp_environment(ranks=ranks), capture_output=True, text=True, check=True,
    )
    output = done.stdout
    loop = float(re.search(r"Loop time of ([\d.e+-]+) on", output).group(1))
    split = re.search(r"mlipdrive: \d+ evaluations on rank 0, ms per evaluation: (.*)", output).group(1)
    rows = np.array([
        [float(v) for v in line.split()]
        for line in output.splitlines()
        if re.match(r"^\s+\d+\s+[\d.e+-]+\s+-?[\d.e+-]+", line)
    ])
    natoms = int(re.search(r"(\d+) atoms", output).group(1))
    time_ps, etotal = rows[:, 1], rows[:, 2]
    slope = np.polyfit(time_ps, etotal / natoms, 1)[0]
    return {"ms_per_step": 1000 * loop / steps, "split": split, "drift": 1000 * slope,
            "atoms": natoms, "energy_range": 1000 * np.ptp(etotal) / natoms}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--extensions", default=None)
    parser.add_argument("--repeat", type=int, default=5, help="fcc cells per edge (4 atoms each)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--output", default=None, help="markdown file to write")
    args = parser.parse_args(argv)

    work = pathlib.Path(tempfile.mkdtemp(prefix="nc-drift-"))
    atoms = copper_aluminium(repeat=args.repeat, rattle=0.05, strain=0.02)
    model = pathlib.Path(args.model).resolve()
    results = {}
    for mode in ("off", "on"):
        directory = work / mode
        directory.mkdir()
        ase.io.write(directory / "data.lmp", atoms, format="lammps-data",
                     specorder=["Al", "Cu"], masses=True)
        results[mode] = run(directory, model, mode, args.steps, args.extensions, args.ranks)
    lines = [
        f"`{' '.join(sys.argv)}`",
        "",
        f"{results['off']['atoms']} atoms, {args.steps} NVE steps of 1 fs from 300 K, "
        f"{args.ranks} rank(s), model {model.name}",
        "",
        "| non_conservative | ms/step | plugin split (ms/evaluation) | drift meV/atom/ps | "
        "total energy range meV/atom |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for mode, row in results.items():
        lines.append(f"| {mode} | {row['ms_per_step']:.1f} | {row['split']} | "
                     f"{row['drift']:.3g} | {row['energy_range']:.3g} |")
    speedup = results["off"]["ms_per_step"] / results["on"]["ms_per_step"]
    lines += ["", f"speed-up of non_conservative on: {speedup:.2f}x"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        pathlib.Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
