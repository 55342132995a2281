"""pair_style mlipdrive: ms/step against the raw model and against LAMMPS's own LJ.

    python benchmarks/lammps_issue3.py --model models/mace/mace-cual.pt [--quick] [--json out.json]

Measures, on this machine, in one run (the load average is recorded with each
number, since other work may share the cores):

1. the shipped MACE model at ~1000 and ~8000 atoms: LAMMPS + plugin ms/step
   (one rank, periodic layout) vs the raw model cost in the Python driver on the
   same atoms (forward + backward, and the driver's whole compute call);
2. the same LJ argon system through pair_style lj/cut and through the plugin
   (the cost of going through torch);
3. one vs two MPI ranks at ~8000 atoms (MACE, and LJ).

Every LAMMPS timing is the "Loop time" of a second `run` (the first one warms
up TorchScript) divided by its steps; torch uses one thread per rank. ``--quick``
(or ``CI`` set in the environment) shrinks everything to a smoke test.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "models" / "lj"))

MASSES = {"Cu": 63.546, "Al": 26.9815385, "Ar": 39.948}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def rotated(atoms):
    """Positions and cell rotated so that the cell is LAMMPS's lower-triangular box."""
    cell = atoms.cell.array
    q, r = np.linalg.qr(cell.T)
    q = q * np.sign(np.diag(r))
    new_cell = cell @ q
    new_cell[np.abs(new_cell) < 1e-14] = 0.0
    return new_cell, atoms.positions @ q


def write_data(path, atoms, elements):
    cell, positions = rotated(atoms)
    cell, positions = cell.tolist(), positions.tolist()
    symbols = atoms.get_chemical_symbols()
    lines = [
        "mlipdrive benchmark",
        "",
        f"{len(atoms)} atoms",
        f"{len(elements)} atom types",
        "",
        f"0.0 {cell[0][0]!r} xlo xhi",
        f"0.0 {cell[1][1]!r} ylo yhi",
        f"0.0 {cell[2][2]!r} zlo zhi",
        f"{cell[1][0]!r} {cell[2][0]!r} {cell[2][1]!r} xy xz yz",
        "",
        "Masses",
        "",
    ]
    lines += [f"{k + 1} {MASSES[e]}" for k, e in enumerate(elements)]
    lines += ["", "Atoms # atomic", ""]
    for index, (symbol, x) in enumerate(zip(symbols, positions)):
        lines.append(f"{index + 1} {elements.index(symbol) + 1} {x[0]!r} {x[1]!r} {x[2]!r}")
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


def run_lammps(workdir, data, pair_lines, steps, warmup, ranks=1):
    """ms/step of `run steps` after `run warmup`, and the plugin's own split."""
    from mlipdrive.lammps import lmp_command, lmp_environment

    script = "\n".join(
        [
            "units metal",
            "boundary p p p",
            f"read_data {data}",
            pair_lines,
            "neighbor 1.0 bin",
            "velocity all create 300 4928459 loop geom",
            "fix 1 all nve",
            "thermo 1000",
            f"run {warmup}",
            f"run {steps}",
        ]
    )
    (workdir / "in.bench").write_text(script + "\n")
    env = lmp_environment(ranks=ranks)
    env["OMP_NUM_THREADS"] = "1"
    command = lmp_command("in.bench", ranks, ["-log", "none", "-echo", "none"])
    load = load_average()
    output = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=3600
    )
    text = output.stdout + output.stderr
    if output.returncode != 0:
        raise RuntimeError(f"lmp failed:\n{text[-4000:]}")
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps", text)
    seconds, _, n_steps = loops[-1]
    splits = re.findall(r"mlipdrive: \d+ evaluations on rank 0, ms per evaluation: (.*)", text)
    ghosts = re.findall(r"Nghost:\s+([0-9.]+) ave", text)
    return {
        "ms_per_step": 1e3 * float(seconds) / int(n_steps),
        "plugin_split_rank0": splits[-1] if splits else None,
        "ghosts_per_rank": float(ghosts[-1]) if ghosts else None,
        "ranks": ranks,
        "load_average": load,
    }


def python_cost(model, atoms, calls, warmup):
    """The Python driver on the same atoms: forward + backward (and the whole call)."""
    import mlipdrive

    potential = mlipdrive.load(model, settings={"threads": 1})
    positions = atoms.positions.copy()
    rng = np.random.default_rng(0)
    load = load_average()
    for _ in range(warmup):
        potential.compute(positions, atoms.numbers, atoms.cell.array, True)
    potential.timings.clear()
    start = time.perf_counter()
    for _ in range(calls):
        positions += rng.normal(scale=1e-3, size=positions.shape)
        potential.compute(positions, atoms.numbers, atoms.cell.array, True)
    total = (time.perf_counter() - start) / calls
    timings = {k: 1e3 * v / calls for k, v in potential.timings.items()}
    return {
        "ms_forward_backward": timings.get("forward", 0.0) + timings.get("backward", 0.0),
        "ms_compute_call": 1e3 * total,
        "split": {k: round(v, 3) for k, v in timings.items()},
        "load_average": load,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "mace" / "mace-cual.pt"))
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("CI")))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from export_lj import export_lj

    from mlipdrive.lammps import plugin_path
    from mlipdrive.testing import argon, copper_aluminium

    plugin_path()
    if args.quick:
        mace_sizes = {"~100": (3, 3, 3)}
        lj_size = (3, 3, 3)
        mpi_size = (3, 3, 3)
        steps = {"mace": (2, 3), "mace-large": (2, 3), "lj": (10, 50)}
    else:
        mace_sizes = {"~1000": (6, 6, 7), "~8000": (12, 12, 14)}
        lj_size = (6, 6, 7)
        mpi_size = (12, 12, 14)
        # (warm-up, timed) steps; TorchScript optimises after its second call
        steps = {"mace": (3, 10), "mace-large": (2, 3), "lj": (50, 500)}

    results = {"machine": {"cores": os.cpu_count(), "torch": torch.__version__}}
    with tempfile.TemporaryDirectory() as directory:
        work = pathlib.Path(directory)
        lj_model = work / "lj.pt"
        export_lj(lj_model, sigma=3.405, epsilon=0.0104, cutoff=8.5, shifted=False)

        # 1. MACE: plugin vs raw model
        results["mace"] = {}
        for label, repeat in mace_sizes.items():
            atoms = copper_aluminium(repeat=repeat, seed=0)
            data = work / f"cual-{len(atoms)}.data"
            write_data(data, atoms, ["Cu", "Al"])
            warmup, n = steps["mace" if len(atoms) < 4000 else "mace-large"]
            entry = {"atoms": len(atoms)}
            entry["python"] = python_cost(args.model, atoms, n, warmup)
            pair = f"pair_style mlipdrive {args.model}\npair_coeff * * Cu Al"
            entry["plugin"] = run_lammps(work, data, pair, n, warmup)
            entry["plugin_over_model"] = (
                entry["plugin"]["ms_per_step"] / entry["python"]["ms_forward_backward"]
            )
            results["mace"][label] = entry
            print(json.dumps({f"mace {label}": entry}, indent=1), flush=True)

        # 2. LJ through lj/cut and through the plugin
        atoms = argon(repeat=1, rattle=0.05, strain=0.0).repeat(lj_size)
        data = work / "argon.data"
        write_data(data, atoms, ["Ar"])
        warmup, n = steps["lj"]
        lj_cut = "pair_style lj/cut 8.5\npair_coeff 1 1 0.0104 3.405"
        plugin = f"pair_style mlipdrive {lj_model}\npair_coeff * * Ar"
        results["lj"] = {
            "atoms": len(atoms),
            "lj/cut": run_lammps(work, data, lj_cut, n, warmup),
            "plugin": run_lammps(work, data, plugin, n, warmup),
        }
        results["lj"]["plugin_over_lj_cut"] = (
            results["lj"]["plugin"]["ms_per_step"] / results["lj"]["lj/cut"]["ms_per_step"]
        )
        print(json.dumps({"lj": results["lj"]}, indent=1), flush=True)

        # 3. one vs two MPI ranks at ~8000 atoms
        results["mpi"] = {}
        atoms = copper_aluminium(repeat=mpi_size, seed=0)
        data = work / "cual-mpi.data"
        write_data(data, atoms, ["Cu", "Al"])
        warmup, n = steps["mace-large"]
        pair = f"pair_style mlipdrive {args.model}\npair_coeff * * Cu Al"
        results["mpi"]["mace"] = {
            "atoms": len(atoms),
            "1 rank (periodic layout)": run_lammps(work, data, pair, n, warmup, ranks=1),
            "1 rank (ghosts layout)": run_lammps(
                work, data, pair.replace(args.model, f"{args.model} mode ghosts"), n, warmup
            ),
            "2 ranks (ghosts layout)": run_lammps(work, data, pair, n, warmup, ranks=2),
        }
        print(json.dumps({"mpi mace": results["mpi"]["mace"]}, indent=1), flush=True)
        atoms = argon(repeat=1, rattle=0.05, strain=0.0).repeat(mpi_size)
        data = work / "argon-mpi.data"
        write_data(data, atoms, ["Ar"])
        warmup, n = steps["lj"]
        results["mpi"]["lj"] = {"atoms": len(atoms)}
        for ranks in (1, 2):
            results["mpi"]["lj"][f"lj/cut {ranks} rank(s)"] = run_lammps(
                work, data, lj_cut, n, warmup, ranks=ranks
            )
            results["mpi"]["lj"][f"plugin {ranks} rank(s)"] = run_lammps(
                work, data, plugin, n // 5, warmup // 5, ranks=ranks
            )
        print(json.dumps({"mpi lj": results["mpi"]["lj"]}, indent=1), flush=True)

    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
