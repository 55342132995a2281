"""From command-line options to a running client, serial or over MPI.

Under ``mpirun -np N`` (N > 1) every rank loads the model and joins a
:class:`mlipdrive.decomposition.DistributedPotential`; rank 0 alone reads the
structure, owns the socket and answers i-PI, the other ranks evaluate their
spatial domains until rank 0 closes the potential (after EXIT or any error).
"""

import os
import signal
import threading
from typing import Optional

import numpy as np

from ._client import (
    DEFAULT_SOCKETS_PREFIX,
    EXIT_EVALUATION,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    log,
    serve,
)

# environment variables through which MPI launchers give the number of ranks
_MPI_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


class Terminated(BaseException):
    """SIGTERM (from ``kill``, a batch system's time limit) as an exception, so that
    the connection is closed gently on the way out (see ``close_gently``)."""


def _terminate(signum, frame):
    raise Terminated(signum)


def launched_with_mpi() -> bool:
    """True under ``mpirun -np N`` with N > 1 (without importing MPI otherwise)."""
    for name in _MPI_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False


def read_types(structure: str, structure_format: Optional[str], atomic_types) -> np.ndarray:
    """Atomic numbers from the structure file, checked against the model's types."""
    from mlipdrive._structure import read_structure
    from mlipdrive.potential import InvalidInput, check_types

    # i-PI initialises from the first frame of its file
    atoms = read_structure(structure, structure_format, index=0)
    types = np.asarray(atoms.numbers, dtype=np.int32)
    try:
        check_types(types, atomic_types)
    except InvalidInput as error:
        raise ValueError(f"structure '{structure}': {error}") from None
    return types


def active_types(types: np.ndarray, active, structure: str) -> np.ndarray:
    """The types of the atoms i-PI sends: all, or those of its ``<activelist>``."""
    if active is None:
        return types
    active = np.asarray(active, dtype=np.int64)
    if len(active) == 0 or active.min() < 0 or active.max() >= len(types):
        raise ValueError(
            f"--active has indices outside the {len(types)} atoms of '{structure}': "
            "give i-PI's <activelist> for the structure that initialises i-PI"
        )
    return types[active]


def run(
    model: str,
    structure: str,
    *,
    structure_format: Optional[str] = None,
    settings="default",
    device: str = "cpu",
    extensions: Optional[str] = None,
    mpi: Optional[bool] = None,
    active=None,
    **serve_options,
) -> int:
    """Load ``model``, connect to i-PI and serve it until EXIT; return an exit code.

    :param structure: a file with the atom types i-PI will send (its order)
    :param mpi: use MPI domain decomposition; ``None`` decides from the launcher
        (``mpirun -np N`` with N > 1)
    :param active: i-PI's ``<activelist>`` (atom indices in ``structure``): i-PI
        sends only these atoms, and they are evaluated alone
    :param serve_options: the connection and loop options of
        :func:`mlipdrive.ipi.serve` (``unix``, ``port``, ``timings``, ...)
    ``settings``, ``device`` and ``extensions`` are those of :func:`mlipdrive.load`.
    """
    from mlipdrive import load

    comm = None
    if mpi or (mpi is None and launched_with_mpi()):
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        if comm.Get_size() == 1:
            comm = None
    rank = 0 if comm is None else comm.Get_rank()

    # i-PI's wire units are converted at the client boundary (see _client.py)
    potential = load(model, settings=settings, device=device, extensions=extensions,
                     units="metal")

    types, problem = None, None
    if rank == 0:
        try:
            types = read_types(structure, structure_format, potential.atomic_types)
            types = active_types(types, active, structure)
            if serve_options.get("ensemble"):
                potential.ensemble_key()  # the model's ensemble, or an error now
            if comm is not None and serve_options.get("ensemble"):
                raise ValueError(
                    "ensembles (energy_ensemble, force_virial_ensemble) run on one rank; "
                    "run the client without mpirun"
                )
        except ValueError as error:
            problem = str(error)
    if comm is not None:
        problem = comm.bcast(problem, root=0)
    if problem is not None:
        if rank == 0:
            log(f"error: {problem}")
        return EXIT_USAGE

    handle_term = rank == 0 and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handle_term else None
    try:
        if comm is None:
            return serve(potential.compute, types, **serve_options)
        return _run_distributed(potential, comm, types, serve_options)
    except KeyboardInterrupt:
        if rank == 0:
            log("interrupted; closed the connection (i-PI gives the work to other clients)")
        return EXIT_INTERRUPTED
    except Terminated:
        log("terminated (SIGTERM); closed the connection (i-PI gives the work to "
            "other clients)")
        return EXIT_TERMINATED
    finally:
        if handle_term:
            signal.signal(signal.SIGTERM, previous)


def _run_distributed(potential, comm, types, options) -> int:
    from mlipdrive.decomposition import DistributedPotential

    rank, size = comm.Get_rank(), comm.Get_size()
    distributed = DistributedPotential(potential, comm=comm)
    if rank != 0:
        try:
            distributed.serve()
        except Exception as error:
            # rank 0 waits on this rank inside a collective: stop the whole job
            log(f"error on MPI rank {rank}: {type(error).__name__}: {error}")
            comm.Abort(EXIT_EVALUATION)
        return 0

    if options.get("verbose"):
        log(f"domain decomposition over {size} MPI ranks; rank 0 talks to i-PI")
    try:
        # a failed evaluation raises on rank 0 only after every rank has left the
        # step's collectives (see decomposition.py), so close() below reaches them
        return serve(distributed.compute, types, **options)
    finally:
        if distributed.in_step:
            # interrupted (Ctrl-C, SIGTERM) between two collectives of a step: the
            # workers cannot be reached by close(); end the job instead of hanging
            comm.Abort(EXIT_INTERRUPTED)
        # releases the other ranks from serve(), whatever happened here
        distributed.close()
