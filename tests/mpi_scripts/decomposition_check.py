"""Run DistributedPotential under mpirun and compare with the serial answer.

    mpirun -np N python decomposition_check.py OUT.json lj:PATH [lj:PATH] [NAME:PATH[:EXTENSIONS]]

``lj`` models run the Ar cases, any other NAME (a model family: mace, pet,
soap_bpnn) the Cu/Al cases, with the model's TorchScript extensions directory if
given (mlipdrive.load imports its Python package on every rank). Rank 0
evaluates every structure of decomposition_cases for each model twice,
with ``potential.compute`` (the reference) and with ``DistributedPotential``
(the workers serve), and writes the largest deviations to OUT.json. It then
checks the error path (a NaN on a worker is raised on rank 0 and serving goes
on). With one rank the domain path is forced
(``decompose_serial``). Nothing is printed on success; the test compares the
deviations with the model's tolerances.
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mpi4py import MPI  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import decomposition_cases as cases  # noqa: E402

import mlipdrive  # noqa: E402
from mlipdrive.decomposition import DistributedPotential  # noqa: E402
from mlipdrive.halo import Decomposition  # noqa: E402

torch.set_num_threads(1)


def species_of(kind):
    return cases.LJ_SPECIES if kind == "lj" else cases.CUAL_SPECIES


def leader(dp, potential, species, report, full):
    structures = cases.structures(species)
    for name, (positions, types, cell, pbc) in structures.items():
        reference = potential.compute(positions, types, cell, pbc, per_atom=True)
        results = dp.compute(positions, types, cell, pbc, per_atom=True)
        report[name] = cases.errors(results, reference, len(types))
        report[name]["max_force"] = float(np.abs(reference.forces).max())
        report[name]["ghosts_rank0"] = int(dp.last_domain.n_ghosts)
        decomposition = Decomposition(positions, cell, pbc, dp.size, potential.interaction_range)
        locals_per_domain = np.bincount(decomposition.owner_domain, minlength=dp.size)
        report[name]["grid"] = list(decomposition.grid)
        report[name]["empty_domains"] = int((locals_per_domain == 0).sum())

    # a second step: moved atoms, and (for several elements) swapped types, which
    # must reach the workers
    positions, types, cell, pbc = structures["slab" if not full else "triclinic"]
    positions = positions + 0.05
    if len(species[0]) > 1:
        types = types[::-1].copy()
    reference = potential.compute(positions, types, cell, pbc, per_atom=True)
    results = dp.compute(positions, types, cell, pbc, per_atom=True)
    report["second_step"] = cases.errors(results, reference, len(types))

    # a short trajectory: small moves reuse the domains (Verlet skin), a large
    # one rebuilds them; every step must still be exact
    rng = np.random.default_rng(3)
    rebuilds = dp.rebuilds
    worst = {}
    for step in range(4):
        positions = positions + rng.normal(scale=0.03, size=positions.shape)
        if step == 3:
            positions[0] += 0.8 * dp.skin
        reference = potential.compute(positions, types, cell, pbc, per_atom=True)
        results = dp.compute(positions, types, cell, pbc, per_atom=True)
        deviations = cases.errors(results, reference, len(types))
        worst = {k: max(v, worst.get(k, 0.0)) for k, v in deviations.items()}
    report["trajectory"] = worst
    report["trajectory"]["rebuilds"] = dp.rebuilds - rebuilds

    if not full:
        return
    # only some outputs: the reduction buffer has another layout
    positions, types, cell, pbc = structures["clustered"]
    for forces, stress in ((True, False), (False, True), (False, False)):
        reference = potential.compute(positions, types, cell, pbc, forces=forces, stress=stress)
        results = dp.compute(positions, types, cell, pbc, forces=forces, stress=stress)
        report[f"forces={forces},stress={stress}"] = cases.errors(results, reference, len(types))


def error_path(dp, species, report):
    """Two atoms on top of each other in the middle of the last rank's slab:
    only that rank sees them (the slab is wider than twice the range)."""
    elements, a = species
    size = dp.size
    width = 2.5 * dp.potential.interaction_range
    cell = np.diag([width * size, 2 * a, 2 * a])
    rng = np.random.default_rng(7)
    n = 12 * size
    positions = rng.random((n, 3)) * [width * size, 2 * a, 2 * a]
    types = np.full(n, dp.potential.atomic_types[0], dtype=np.int32)
    positions[0] = [width * (size - 0.5), a, a]
    positions[1] = positions[0]
    # not every model gives a non-finite result for two atoms on top of each
    # other (PET does not): the serial answer says what the MPI one must be
    try:
        dp.potential.compute(positions, types, cell, True)
    except FloatingPointError as error:
        report["serial_error"] = str(error)
    else:
        report["serial_error"] = None
    try:
        dp.compute(positions, types, cell, True)
    except FloatingPointError as error:
        report["error_message"] = str(error)
    else:
        report["error_message"] = None
    # the workers are still serving
    positions, types, cell, pbc = cases.structures(species)["slab"]
    reference = dp.potential.compute(positions, types, cell, pbc)
    report["after_error"] = cases.errors(
        dp.compute(positions, types, cell, pbc), reference, len(types)
    )


def main():
    out = pathlib.Path(sys.argv[1])
    comm = MPI.COMM_WORLD
    reports = {}
    for spec in sys.argv[2:]:
        kind, path, *extensions = spec.split(":")
        # graph_optimize off: TorchScript's profiling runs make the first calls of
        # each rank 5x slower, and these short runs are mostly first calls
        potential = mlipdrive.load(
            path, settings={"graph_optimize": False}, extensions=(extensions or [None])[0]
        )
        dp = DistributedPotential(potential, comm, decompose_serial=comm.size == 1)
        report = reports.setdefault(f"{kind}:{pathlib.Path(path).name}", {})
        if dp.rank == 0:
            try:
                # the flag variants test the buffer layout: the LJ runs do that
                leader(dp, potential, species_of(kind), report, full=kind == "lj")
                error_path(dp, species_of(kind), report)
            finally:
                dp.close()
        else:
            dp.serve()
    if comm.rank == 0:
        out.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
