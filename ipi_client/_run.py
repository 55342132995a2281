"""From command-line options to a running client, serial or over MPI.

Under ``mpirun -np N`` (N > 1) every rank loads the model and joins a
:class:`mlipdrive.decomposition.DistributedPotential`; rank 0 alone reads the
structure, owns the socket (UNIX, INET or ``shm``) and answers i-PI, the other
ranks evaluate their spatial domains until rank 0 closes the potential (after
EXIT or any error). Under i-PI's ``<ffmpi>`` (:func:`run_ffmpi`) the client
ranks form groups; each group's root answers i-PI over MPI and the group is
one such decomposition.
"""

import contextlib
import os
import signal
import threading
import traceback
from typing import Optional

import numpy as np

from ._client import (
    EXIT_EVALUATION,
    EXIT_OK,
    EXIT_PROTOCOL,
    EvaluationError,
    Evaluator,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    log,
    serve,
)
from ._ffmpi import MpiLink, end_ffmpi_job, join_ipi_world
from ._protocol import ProtocolError

# environment variables through which MPI launchers give the number of ranks
_MPI_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")


_HANDED_BACK = "closed the connection (i-PI gives the work to other clients)"


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
    ffmpi: Optional[dict] = None,
    **serve_options,
) -> int:
    """Load ``model``, connect to i-PI and serve it until EXIT; return an exit code.

    :param structure: a file with the atom types i-PI will send (its order)
    :param mpi: use MPI domain decomposition; ``None`` decides from the launcher
        (``mpirun -np N`` with N > 1)
    :param active: i-PI's ``<activelist>`` (atom indices in ``structure``): i-PI
        sends only these atoms, and they are evaluated alone
    :param ffmpi: talk to i-PI's ``<ffmpi>`` over MPI instead of a socket: the
        keyword arguments of :func:`run_ffmpi` (``group_size``, ``server_rank``,
        ``name``, ``colour``); ``mpi`` is then ignored
    :param serve_options: the connection and loop options of
        :func:`mlipdrive.ipi.serve` (``unix``, ``port``, ``shm``, ``timings``, ...)
    ``settings``, ``device`` and ``extensions`` are those of :func:`mlipdrive.load`.
    """
    from mlipdrive import load

    if ffmpi is not None:
        return run_ffmpi(model, structure, structure_format=structure_format,
                         settings=settings, device=device, extensions=extensions,
                         active=active, **ffmpi, **serve_options)
    comm = _decomposition_comm(mpi)
    rank = 0 if comm is None else comm.Get_rank()
    # i-PI's wire units are converted at the client boundary (see _client.py)
    potential = load(model, settings=settings, device=device, extensions=extensions,
                     units="metal")
    types, problem = _shared_client_types(comm, potential, structure, structure_format,
                                          active, serve_options.get("ensemble"))
    if problem is not None:
        if rank == 0:
            log(f"error: {problem}")
        return EXIT_USAGE
    with _sigterm_raises(rank == 0):
        try:
            if comm is None:
                return serve(potential.compute, types, **serve_options)
            return _run_distributed(potential, comm, types, serve_options)
        except KeyboardInterrupt:
            if rank == 0:
                log(f"interrupted; {_HANDED_BACK}")
            return EXIT_INTERRUPTED
        except Terminated:
            log(f"terminated (SIGTERM); {_HANDED_BACK}")
            return EXIT_TERMINATED


def _decomposition_comm(mpi: Optional[bool]):
    """COMM_WORLD when the evaluation is split over several ranks, else None."""
    if not (mpi or (mpi is None and launched_with_mpi())):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def _shared_client_types(comm, potential, structure, structure_format, active, ensemble):
    """:func:`_client_types` on rank 0, and its verdict on every rank; any error
    there becomes the verdict (the other ranks wait for it in a broadcast)."""
    types, problem = None, None
    if comm is None or comm.Get_rank() == 0:
        try:
            types, problem = _client_types(potential, structure, structure_format, active,
                                           ensemble, comm is not None)
        except Exception as error:
            if comm is None:
                raise
            problem = f"{type(error).__name__}: {error}"
    if comm is not None:
        problem = comm.bcast(problem, root=0)
    return types, problem


def _client_types(potential, structure, structure_format, active, ensemble,
                  decomposed: bool):
    """``(types, None)`` of the atoms i-PI sends, or ``(None, why not)``."""
    try:
        types = read_types(structure, structure_format, potential.atomic_types)
        types = active_types(types, active, structure)
        if ensemble:
            potential.ensemble_key()  # the model's ensemble, or an error now
        if decomposed:
            from mlipdrive.decomposition import check_splittable

            check_splittable(potential, "splitting it over the MPI ranks")
        if decomposed and ensemble:
            raise ValueError(
                "ensembles (energy_ensemble, force_virial_ensemble) run on one rank; "
                "run the client without mpirun (or with --group-size 1 under <ffmpi>)"
            )
    except ValueError as error:
        return None, str(error)
    return types, None


@contextlib.contextmanager
def _sigterm_raises(wanted: bool):
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only)."""
    handle = wanted and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handle else None
    try:
        yield
    finally:
        if handle:
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


# ---------------------------------------------------------------------- <ffmpi>

def run_ffmpi(model: str, structure: str, **options) -> int:
    """Serve i-PI's ``<ffmpi>`` from every client rank of an MPMD job (see
    ``_ffmpi.py``): each group of ``group_size`` ranks evaluates one structure
    at a time, its root talking to i-PI, the group split into spatial domains.
    ``options``: those of :func:`_serve_ffmpi`.

    Any failure, a wrong option or a model that does not load included, ends
    the whole job (:func:`~._ffmpi.end_ffmpi_job`).
    """
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    try:
        code = _serve_ffmpi(world, model, structure, **options)
    except (ValueError, RuntimeError, OSError) as error:  # as ``mlipdrive`` reports them
        log(f"error: {error}")
        code = EXIT_USAGE
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except Terminated:
        code = EXIT_TERMINATED
    except Exception:
        traceback.print_exc()
        code = 1
    if code != EXIT_OK:
        end_ffmpi_job(code)
    return code


def _serve_ffmpi(world, model: str, structure: str, *, structure_format=None,
                 settings="default", device="cpu", extensions=None, active=None,
                 group_size: int = 1, server_rank: int = 0, name: str = "", colour: int = 0,
                 pbc=None, per_atom_energies=False, ensemble="", verbose=False,
                 timings=False, **socket_options) -> int:
    """:func:`run_ffmpi`'s work; an exit code. The ``socket_options`` (address,
    timeouts) do not apply and are ignored."""
    from mlipdrive import load

    if socket_options.get("shm"):
        log("error: --shm is a mode of <ffsocket>; <ffmpi> passes everything over MPI")
        return EXIT_USAGE
    if world.Get_size() < 2 or world.Get_rank() == server_rank or group_size < 1:
        log("error: <ffmpi> needs i-PI and the clients in one MPI job, e.g. 'mpirun "
            "-disable-auto-cleanup -n 1 "
            "i-pi input.xml : -n 2 mlipdrive-ipi-driver --mpi -m metatomic -o ...', "
            f"i-PI on rank {server_rank} and a --group-size of at least 1")
        return EXIT_USAGE
    potential = load(model, settings=settings, device=device, extensions=extensions,
                     units="metal")
    group = join_ipi_world(world, server_rank, group_size, name, colour)
    types, problem = None, None
    if group.Get_rank() == 0:
        types, problem = _client_types(potential, structure, structure_format, active,
                                       ensemble, group.Get_size() > 1)
    if group.bcast(problem, root=0) is not None:
        if group.Get_rank() == 0:
            log(f"error: {problem}")
        return EXIT_USAGE
    evaluator_options = dict(pbc=pbc, per_atom_energies=per_atom_energies, ensemble=ensemble)
    with _sigterm_raises(group.Get_rank() == 0):
        return _serve_ffmpi_group(potential, world, group, server_rank, types,
                                  evaluator_options, verbose or timings)


def _serve_ffmpi_group(potential, world, group, server_rank, types, evaluator_options,
                       report: bool) -> int:
    """One group's part of :func:`run_ffmpi`; an exit code."""
    compute, distributed = potential.compute, None
    if group.Get_size() > 1:
        from mlipdrive.decomposition import DistributedPotential

        distributed = DistributedPotential(potential, comm=group)
        if group.Get_rank() != 0:
            distributed.serve()
            return EXIT_OK
        compute = distributed.compute
    link = MpiLink(world, server_rank, Evaluator(compute, types, **evaluator_options),
                   verbose=report)
    try:
        link.run()
    except EvaluationError as error:
        log(f"error: the model failed on the structure i-PI sent (evaluation "
            f"{link.timings.evaluations + 1}): {error}")
        return EXIT_EVALUATION
    except ProtocolError as error:
        log(f"error: protocol: {error}")
        return EXIT_PROTOCOL
    finally:
        if distributed is not None and not distributed.in_step:
            distributed.close()
    if report:
        log("i-PI sent EXIT; " + link.timings.summary())
    return EXIT_OK

