"""Faults put into one rank's domain on purpose, for test_verify.py.

    mpirun -np 2 python verify_faults.py OUT.json LJ_MODEL

- ``double``: rank 1 builds rank 0's domain, so that the
  local atoms of domain 0 are evaluated twice and those of domain 1 never, the
  counts still adding up to the atom count;
- ``stale pairs``: rank 1 keeps its domain and pairs although an atom moved 3 Å
  (along the uncut axis y: no atom changes domain).

Each runs with verify on (the error raised on rank 0 goes to OUT.json) and off
(the energy given, and a fresh serial potential's).
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/
from structures import argon  # noqa: E402

import mlipdrive  # noqa: E402
from mlipdrive.decomposition import DistributedPotential  # noqa: E402
from mlipdrive.halo import Decomposition  # noqa: E402


def evenly_split(potential):
    """Argon whose two domains hold the same number of atoms: no atom near a
    cut (fractional coordinates 1/8 away from the fcc planes)."""
    atoms = argon(repeat=2, rattle=0.05)
    atoms.positions += atoms.cell.array.sum(axis=0) / 16
    decomposition = Decomposition(atoms.positions, atoms.cell.array, atoms.pbc, 2,
                                  potential.interaction_range)
    assert np.bincount(decomposition.owner_domain).tolist() == [len(atoms) // 2] * 2
    return atoms


def double(path, verify):
    potential = mlipdrive.load(path, settings={"verify": verify, "skin": 0.2})
    atoms = evenly_split(potential)
    dp = DistributedPotential(potential, MPI.COMM_WORLD)
    if dp.rank != 0:
        dp._domains.rank = 0
        dp.serve()
        return None
    with dp:
        return dp.compute(atoms.positions, atoms.numbers, atoms.cell.array, True).energy, atoms


def stale_pairs(path, verify):
    potential = mlipdrive.load(path, settings={"verify": verify, "skin": 0.2})
    atoms = evenly_split(potential)
    dp = DistributedPotential(potential, MPI.COMM_WORLD)
    moved = atoms.positions.copy()
    moved[3, 1] += 3.0
    if dp.rank != 0:
        # rank 1 keeps the domain and pairs of its first build for ever
        dp._domains._needs_rebuild = lambda *_: dp._domains.rebuilds == 0
        dp.serve()
        return None
    with dp:
        dp.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
        energy = dp.compute(moved, atoms.numbers, atoms.cell.array, True).energy
    atoms.positions = moved
    return energy, atoms


def main(out, path):
    report = {}
    for name, case in (("double", double), ("stale pairs", stale_pairs)):
        found = report[name] = {}
        try:
            case(path, True)
        except Exception as error:  # noqa: BLE001 -- written down for the test
            found["error"] = f"{type(error).__name__}: {error}"
        answer = case(path, False)
        if answer is not None:
            found["kept"], atoms = answer
            fresh = mlipdrive.load(path, settings={"verify": False})
            found["fresh"] = fresh.compute(
                atoms.positions, atoms.numbers, atoms.cell.array, True
            ).energy
    if MPI.COMM_WORLD.Get_rank() == 0:
        pathlib.Path(out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:3])
