"""mlipdrive's Python core with a minimal velocity Verlet (numpy).

Each step is one ``Potential.compute`` (energy and forces; the Verlet-skin
neighbour list of the core), so this row is the core's own per-step cost with a
near-free integrator. On several ranks (the worker runs under ``mpirun``) rank 0
integrates and calls ``DistributedPotential.compute``; the other ranks serve
their spatial domain.
"""

import pathlib

from ..matrix import Row
from ..measure import drift, per_step_ms
from . import _common


def run(row: Row, workdir: pathlib.Path):
    import ase.io
    import ase.units

    potential = _common.load_potential(row)
    compute = potential.compute
    distributed = None
    if row.ranks > 1:
        from mpi4py import MPI

        from mlipdrive.decomposition import DistributedPotential

        comm = MPI.COMM_WORLD
        if comm.Get_size() != row.ranks:
            raise RuntimeError(
                f"this row wants {row.ranks} MPI ranks but runs on {comm.Get_size()}; "
                "the harness starts it under mpirun -np RANKS"
            )
        distributed = DistributedPotential(potential, comm=comm)
        if distributed.rank != 0:
            distributed.serve()
            return None
        compute = distributed.compute

    try:
        # parallel=False: under mpi4py, ASE's read is a collective (rank 0 reads
        # and broadcasts); here only rank 0 reads
        atoms = ase.io.read(row.structure, parallel=False)
        numbers, cell, pbc = atoms.numbers, atoms.cell.array, atoms.pbc
        positions = atoms.positions.copy()
        masses = atoms.get_masses()[:, None]
        velocities = atoms.get_velocities()  # Å / ASE time unit
        dt = row.timestep_fs * ase.units.fs
        results = compute(positions, numbers, cell, pbc, forces=True, stress=False)
        energy0 = results.energy
        acceleration = results.forces / masses
        samples = []  # (step, total energy)

        def step(index):
            nonlocal acceleration, velocities, results
            positions[:] += velocities * dt + 0.5 * acceleration * dt * dt
            results = compute(positions, numbers, cell, pbc, forces=True, stress=False)
            new_acceleration = results.forces / masses
            velocities += 0.5 * (acceleration + new_acceleration) * dt
            acceleration = new_acceleration
            if measuring and index % row.thermo_every == 0:
                kinetic = 0.5 * float((masses * velocities * velocities).sum())
                samples.append((index, results.energy + kinetic))

        measuring = False
        baseline = {}

        def tables():
            found = {"core": dict(potential.timings)}
            if distributed is not None:
                found["mpi"] = dict(distributed.timings)
            return found

        def on_warm():
            nonlocal measuring, baseline
            measuring = True
            baseline = tables()

        measured = _common.timed_blocks(row, _common.step_loop(step), on_warm=on_warm)
        n = measured["measured_steps"]
        spent = {
            name: {k: v - baseline[name].get(k, 0.0) for k, v in table.items()}
            for name, table in tables().items()
        }
        split = per_step_ms(spent["core"], n)
        if distributed is not None:
            mpi = per_step_ms(spent["mpi"], n)
            # halo construction and the domain's pair search are this path's
            # neighbour work; broadcast and reduction its communication
            split["neighbors"] = (
                split.get("neighbors", 0.0) + mpi.get("domain", 0.0) + mpi.get("pairs", 0.0)
            )
            split["communication"] = mpi.get("broadcast", 0.0) + mpi.get("reduce", 0.0)
        total = sum(measured["repeat_ms"]) / len(measured["repeat_ms"])
        split["driver"] = max(total - sum(split.values()), 0.0)
        steps, energies = zip(*samples) if samples else ((), ())
        return {
            **measured,
            "split_ms": split,
            "energy0_per_atom": energy0 / len(atoms),
            "drift_ev_per_atom_ps": drift(
                [s * row.timestep_fs * 1e-3 for s in steps], energies, len(atoms)
            ),
            "gpu_memory_mb": _common.gpu_memory_mb(row.device),
            "notes": ["split from rank 0"] if distributed else [],
        }
    finally:
        if distributed is not None:
            distributed.close()
