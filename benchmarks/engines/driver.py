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
    potential = _common.load_potential(row)
    distributed = _distributed(row, potential)
    if distributed is not None and distributed.rank != 0:
        distributed.serve()
        return None
    try:
        return _measure(row, potential, distributed)
    finally:
        if distributed is not None:
            distributed.close()


def _distributed(row: Row, potential):
    """The row's ``DistributedPotential`` on several MPI ranks; None on one."""
    if row.ranks <= 1:
        return None
    from mpi4py import MPI

    from mlipdrive.decomposition import DistributedPotential

    comm = MPI.COMM_WORLD
    if comm.Get_size() != row.ranks:
        raise RuntimeError(
            f"this row wants {row.ranks} MPI ranks but runs on {comm.Get_size()}; "
            "the harness starts it under mpirun -np RANKS"
        )
    return DistributedPotential(potential, comm=comm)


class _Verlet:
    """Velocity Verlet (numpy) of the row's structure with ``compute``; once
    ``measuring``, the total energy every ``row.thermo_every`` steps."""

    def __init__(self, row: Row, compute):
        import ase.io
        import ase.units

        # parallel=False: under mpi4py, ASE's read is a collective (rank 0 reads
        # and broadcasts); here only rank 0 reads
        atoms = ase.io.read(row.structure, parallel=False)
        self.row, self.compute, self.n_atoms = row, compute, len(atoms)
        self.numbers, self.cell, self.pbc = atoms.numbers, atoms.cell.array, atoms.pbc
        self.positions = atoms.positions.copy()
        self.masses = atoms.get_masses()[:, None]
        self.velocities = atoms.get_velocities()  # Å / ASE time unit
        self.dt = row.timestep_fs * ase.units.fs
        results = self._forces()
        self.energy0 = results.energy
        self.acceleration = results.forces / self.masses
        self.measuring = False
        self.samples = []  # (step, total energy)

    def _forces(self):
        return self.compute(self.positions, self.numbers, self.cell, self.pbc,
                            forces=True, stress=False)

    def step(self, index: int):
        dt = self.dt
        self.positions[:] += self.velocities * dt + 0.5 * self.acceleration * dt * dt
        results = self._forces()
        new_acceleration = results.forces / self.masses
        self.velocities += 0.5 * (self.acceleration + new_acceleration) * dt
        self.acceleration = new_acceleration
        if self.measuring and index % self.row.thermo_every == 0:
            kinetic = 0.5 * float((self.masses * self.velocities * self.velocities).sum())
            self.samples.append((index, results.energy + kinetic))

    def drift(self):
        """Energy drift per atom and ps over the sampled steps."""
        steps, energies = zip(*self.samples) if self.samples else ((), ())
        times_ps = [step * self.row.timestep_fs * 1e-3 for step in steps]
        return drift(times_ps, energies, self.n_atoms)


def _measure(row: Row, potential, distributed) -> dict:
    """Time the row's NVE steps on rank 0; the row's figures."""
    verlet = _Verlet(row, distributed.compute if distributed else potential.compute)
    baseline = {}

    def tables():
        found = {"core": dict(potential.timings)}
        if distributed is not None:
            found["mpi"] = dict(distributed.timings)
        return found

    def on_warm():
        verlet.measuring = True
        baseline.update(tables())

    measured = _common.timed_blocks(row, _common.step_loop(verlet.step), on_warm=on_warm)
    spent = {
        name: {k: v - baseline[name].get(k, 0.0) for k, v in table.items()}
        for name, table in tables().items()
    }
    return {
        **measured,
        "split_ms": _split(measured, spent),
        "energy0_per_atom": verlet.energy0 / verlet.n_atoms,
        "drift_ev_per_atom_ps": verlet.drift(),
        "gpu_memory_mb": _common.gpu_memory_mb(row.device),
        "notes": ["split from rank 0"] if distributed else [],
    }


def _split(measured: dict, spent: dict) -> dict:
    """ms/step per phase from the core's (and the MPI layer's) timing tables."""
    n = measured["measured_steps"]
    split = per_step_ms(spent["core"], n)
    if "mpi" in spent:
        mpi = per_step_ms(spent["mpi"], n)
        # halo construction and the domain's pair search are this path's
        # neighbour work; broadcast and reduction its communication
        split["neighbors"] = (
            split.get("neighbors", 0.0) + mpi.get("domain", 0.0) + mpi.get("pairs", 0.0)
        )
        split["communication"] = mpi.get("broadcast", 0.0) + mpi.get("reduce", 0.0)
    total = sum(measured["repeat_ms"]) / len(measured["repeat_ms"])
    split["driver"] = max(total - sum(split.values()), 0.0)
    return split
