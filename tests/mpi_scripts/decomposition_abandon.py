"""Rank 0 fails after one step without calling close(): the job must end.

    mpirun -np N python decomposition_abandon.py MODEL.pt

Rank 0 raises an uncaught exception; DistributedPotential's atexit hook closes
for it, the workers return from serve() and write a line each, and mpirun exits
with rank 0's non-zero code instead of hanging.
"""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

import mlipdrive  # noqa: E402
from mlipdrive.decomposition import DistributedPotential  # noqa: E402

potential = mlipdrive.load(sys.argv[1])
dp = DistributedPotential(potential, MPI.COMM_WORLD)
if dp.rank == 0:
    rng = np.random.default_rng(0)
    positions = rng.random((64, 3)) * 20.0
    dp.compute(positions, np.full(64, potential.atomic_types[0]), np.eye(3) * 20.0, True)
    raise SystemExit("rank 0 gives up without close()")
dp.serve()
print(f"worker {dp.rank} returned from serve()", flush=True)
