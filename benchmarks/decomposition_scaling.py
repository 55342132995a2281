"""Cost of the MPI domain decomposition: time per compute on 1 and N ranks.

    mpirun -np 1 python benchmarks/decomposition_scaling.py --model lj --atoms 8000
    mpirun -np 2 python benchmarks/decomposition_scaling.py --model mace --atoms 8000

Each step moves the atoms a little (as MD does) and evaluates energy, forces and
virial on rank 0 through ``DistributedPotential.compute`` (the workers serve).
Wall time per step is reported with each rank's CPU time per step: on a shared
machine the CPU time is the figure that other jobs do not distort.
With one rank it times ``potential.compute`` itself (its Verlet list is reused
between steps), ``DistributedPotential.compute`` (a pass-through) and the domain
path forced on one rank (``decompose_serial``: the decomposition's own overhead).
It then times the reduction of the results buffer (4n doubles) against the
alternative of gathering only each rank's local and ghost forces.

Threads: one torch thread per rank (``--threads``). ``CI`` set: a smoke run.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mpi4py import MPI  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mlipdrive  # noqa: E402
from benchmarks import models, systems  # noqa: E402
from mlipdrive.decomposition import DistributedPotential  # noqa: E402


class Trajectory:
    """Positions that move a little at every step, as in MD (seeded)."""

    def __init__(self, atoms, seed=0):
        self.atoms = atoms
        self.positions = atoms.positions.copy()
        self.rng = np.random.default_rng(seed)

    def run(self, compute, steps):
        """(wall ms, this process's CPU ms) of each of ``steps`` calls of
        ``compute(positions, types, cell, pbc)``."""
        wall, cpu = [], []
        for _ in range(steps):
            self.positions += self.rng.normal(scale=0.002, size=self.positions.shape)
            start, start_cpu = time.perf_counter(), time.process_time()
            compute(self.positions, self.atoms.numbers, self.atoms.cell.array, self.atoms.pbc)
            wall.append((time.perf_counter() - start) * 1e3)
            cpu.append((time.process_time() - start_cpu) * 1e3)
        return wall, cpu


def stats(times, cpu=None):
    out = {
        "ms": statistics.median(times),
        "spread_ms": statistics.pstdev(times),
        "all_ms": [round(t, 2) for t in times],
    }
    if cpu is not None:
        out["cpu_ms"] = statistics.median(cpu)
    return out


def per_step(timings, steps):
    return {phase: round(seconds / steps * 1e3, 2) for phase, seconds in timings.items()}


def communication(comm, n_atoms, domain, repeats=20):
    """ms per reduction of the whole-structure buffer, and per gather of only
    the local + ghost forces with their owner indices (the alternative)."""
    buffer = np.ones(12 + 4 * n_atoms)
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        if comm.rank == 0:
            comm.Reduce(MPI.IN_PLACE, buffer, op=MPI.SUM, root=0)
        else:
            comm.Reduce(buffer, None, op=MPI.SUM, root=0)
    reduce_ms = (time.perf_counter() - start) / repeats * 1e3

    n_mine = len(domain.owners)
    forces = np.ones(3 * n_mine)
    owners = domain.owners.astype(np.int64)
    counts = comm.gather(n_mine, root=0)
    if comm.rank == 0:
        total = sum(counts)
        forces_all, owners_all = np.empty(3 * total), np.empty(total, dtype=np.int64)
        displacements = np.cumsum([0] + counts[:-1])
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        if comm.rank == 0:
            comm.Gatherv(forces, [forces_all, np.array(counts) * 3, displacements * 3, MPI.DOUBLE])
            comm.Gatherv(owners, [owners_all, counts, displacements, MPI.INT64_T])
            summed = np.zeros((n_atoms, 3))
            for axis in range(3):
                summed[:, axis] = np.bincount(
                    owners_all, weights=forces_all[axis::3], minlength=n_atoms
                )
        else:
            comm.Gatherv(forces, None)
            comm.Gatherv(owners, None)
    gather_ms = (time.perf_counter() - start) / repeats * 1e3
    return {"reduce_whole_buffer_ms": reduce_ms, "gather_local_and_ghost_forces_ms": gather_ms}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lj", help="'lj', 'mace' or a .pt file")
    parser.add_argument("--atoms", type=int, default=8000, help="about this many atoms")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--settings", default="default", help="settings preset")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument(
        "--skin", type=float, help="domain Verlet skin (length unit of the model's "
        "engine, Å); default: the settings' skin"
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--workdir", default="/tmp/mlipdrive-bench")
    args = parser.parse_args()
    if os.environ.get("CI"):
        args.atoms, args.steps, args.warmup = min(args.atoms, 256), 2, 1

    comm = MPI.COMM_WORLD
    torch.set_num_threads(args.threads)
    # rank 0 exports the LJ model when needed; the others wait for the file
    spec = models.resolve(args.model, pathlib.Path(args.workdir)) if comm.rank == 0 else None
    spec = comm.bcast(spec, root=0)
    if spec.missing:
        raise SystemExit(spec.missing)
    potential = mlipdrive.load(spec.path, settings=args.settings)
    atoms = systems.build(spec.system, args.atoms)  # seeded: the same on every rank

    dp = DistributedPotential(potential, comm, skin=args.skin)  # for its skin
    report = {
        "model": spec.label,
        "atoms": len(atoms),
        "ranks": comm.size,
        "settings": args.settings,
        "threads_per_rank": args.threads,
        "interaction_range": potential.interaction_range,
        "cell_lengths": np.linalg.norm(atoms.cell.array, axis=1).round(2).tolist(),
        "steps": args.steps,
        "domain_skin": dp.skin,
        "load_average_before": os.getloadavg()[0],
    }
    trajectory = Trajectory(atoms)
    if comm.size == 1:
        trajectory.run(potential.compute, args.warmup)
        potential.timings.clear()
        report["plain_compute"] = stats(*trajectory.run(potential.compute, args.steps))
        report["plain_phases_ms"] = per_step(potential.timings, args.steps)
        report["passthrough"] = stats(*trajectory.run(dp.compute, min(args.steps, 2)))
        serial = DistributedPotential(potential, comm, decompose_serial=True, skin=args.skin)
        trajectory.run(serial.compute, args.warmup)
        serial = DistributedPotential(potential, comm, decompose_serial=True, skin=args.skin)
        report["domain_path_one_rank"] = stats(*trajectory.run(serial.compute, args.steps))
        report["domain_path_phases_ms"] = per_step(serial.timings, args.steps)
        report["ghosts"] = [serial.last_domain.n_ghosts]
        domain = serial.last_domain
    else:
        # warm-up (TorchScript's first calls) with one DistributedPotential, the
        # measured steps with a fresh one, so that its timings and every rank's
        # CPU time cover the measured steps only
        for phase in ("warmup", "measure"):
            comm.Barrier()
            start_cpu = time.process_time()
            dp = DistributedPotential(potential, comm, skin=args.skin)
            steps = args.warmup if phase == "warmup" else args.steps
            if comm.rank == 0:
                with dp:
                    wall, cpu = trajectory.run(dp.compute, steps)
            else:
                dp.serve()
            cpu_ms = (time.process_time() - start_cpu) * 1e3 / max(steps, 1)
        domain = dp.last_domain
        phases = comm.gather(per_step(dp.timings, args.steps), root=0)
        counts = comm.gather((domain.n_local, domain.n_ghosts), root=0)
        cpu_per_rank = comm.gather(cpu_ms, root=0)
        if comm.rank == 0:
            report["distributed"] = stats(wall, cpu)
            report["cpu_ms_per_step_per_rank"] = cpu_per_rank
            report["phases_ms_per_rank"] = phases
            report["locals_per_rank"] = [c[0] for c in counts]
            report["ghosts_per_rank"] = [c[1] for c in counts]
            report["rebuilds"] = dp.rebuilds
    report["communication"] = communication(comm, len(atoms), domain)
    report["load_average_after"] = os.getloadavg()[0]

    if comm.rank == 0:
        print(json.dumps(report, indent=1))
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
