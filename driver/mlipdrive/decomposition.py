"""MPI spatial domain decomposition: one structure, evaluated by all ranks.

Use (the i-PI client and the benchmark driver: rank 0 owns the structure)::

    dp = DistributedPotential(potential, comm=MPI.COMM_WORLD)   # every rank
    if dp.rank == 0:
        with dp:                                                # close() at the end
            results = dp.compute(positions, types, cell, pbc)   # as potential.compute
    else:
        dp.serve()                                              # until close()

One step. Rank 0 broadcasts a small header (command, atom count, flags, pbc), the
cell and positions in one float64 buffer, and the types only when they changed.
Every rank cuts the structure into the same domains (:mod:`mlipdrive.halo`, a pure
function of the broadcast data; like a Verlet list, a rank's local atoms, ghosts
and pairs are kept while no atom moved more than half the skin), evaluates its
own domain (local atoms + ghost halo, energy of the local atoms only; for a
short-range model without the pairs between two ghosts, see
:mod:`mlipdrive.halo`) and writes
its share into one float64 buffer

    [failed ranks, local atoms, energy, virial (9), forces (3n), energies (n),
     energy uncertainties (n, where the model has them), local counts (n, with
     the verify setting: in how many domains each atom is local)]

with the forces on ghosts already added onto their owner atoms and zeros
elsewhere; one ``MPI_Reduce(SUM)`` gives rank 0 the complete results. A
whole-structure buffer is simple and costs one reduction of 4n doubles (~1 ms
for 8000 atoms here), small next to the
model on the same atoms. The local-atom count must add up to the atom count:
ranks that disagreed about the domains would be an error, not a wrong answer.

Errors. A rank whose domain fails (NaN, unsupported type, ...) still takes part
in the reduction with its failure counted in the first slot, and sends its error
to rank 0 in a point-to-point message; rank 0 raises it (same exception type,
message prefixed with the rank) after the reduction, so no rank is ever left
waiting in a collective. An error of the model on a domain adds that the model
may not support domain decomposition (long-range terms that need the whole
periodic structure fail there even with a finite declared range). Workers go on serving: the caller on rank 0 decides
whether to go on or to :meth:`DistributedPotential.close`. A rank that dies
(segfault, kill) makes ``mpirun`` end the job. If rank 0's Python exits without
``close()`` (an exception), an ``atexit`` hook closes for it, or aborts the job
if it was interrupted in the middle of a step, so that workers never wait for
ever.

Idle workers wait for the next step in a non-blocking broadcast that they poll,
sleeping more and more (up to 1 ms): MPICH's blocking calls spin at 100% CPU,
which would take a core from i-PI or from rank 0 while rank 0 waits on its socket.
"""

import atexit
import collections
import time
import traceback
from typing import Dict, Optional

import numpy as np
import torch

from .halo import DomainList
from .loading import long_range_modules
from .messages import evaluation_message
from .potential import InvalidInput, Potential, Results, check_types, timed
from .settings import torch_threads
from .verify import VerifyError, check_kept_types, check_partition, current_evaluation

_STOP, _COMPUTE = 0, 1
# header: command, n_atoms, forces, stress, per_atom, types follow, pbc (3)
_HEADER_SIZE = 9
# reduction buffer: failed ranks, local atoms, energy, virial (9), forces, energies
_FAILED, _LOCAL, _ENERGY, _VIRIAL, _OFFSET = 0, 1, 2, slice(3, 12), 12
# idle workers: poll the next header this long, then sleep from _SLEEP_MIN up to
# _SLEEP_MAX seconds between polls
_SPIN, _SLEEP_MIN, _SLEEP_MAX = 2e-4, 2e-5, 1e-3
_ERROR_TAG = 0x6D6C  # point-to-point error reports to rank 0

# exception types that rank 0 raises again as they are (message from the worker)
_KNOWN_ERRORS = {
    cls.__name__: cls
    for cls in (
        InvalidInput,
        VerifyError,
        FloatingPointError,
        ValueError,
        TypeError,
        RuntimeError,
        MemoryError,
        IndexError,
        KeyError,
    )
}


class DistributedPotential:
    """A :class:`Potential` evaluated by all ranks of ``comm``, one spatial domain
    each.

    Make one per communicator, on every rank: with the ``threads 0`` setting on
    more than one rank the constructor is a collective operation (it counts the
    ranks on each node to share its cores; see
    :func:`mlipdrive.settings.torch_threads`); rank 0's :meth:`compute` calls and
    :meth:`close` pair with the workers' :meth:`serve`. A second one made on rank
    0 alone after the workers left :meth:`serve` would wait for them for ever (its
    close() included).

    :param potential: the loaded model, on every rank
    :param comm: an mpi4py communicator; default ``MPI.COMM_WORLD``
    :param decompose_serial: on a single rank, go through the domain path anyway
        instead of calling ``potential.compute`` (for tests and to measure the
        decomposition's overhead); default False
    :param grid: force the domain grid ``(g0, g1, g2)`` (product = ranks) instead
        of the automatic choice
    :param skin: Verlet skin of the domains, in the potential's length unit:
        halos and pair lists are built ``skin`` wider and reused until an atom
        moved more than ``skin / 2``; default: the potential's ``skin`` setting.
        0 rebuilds every step, which is faster for models whose cost per ghost
        atom outweighs the neighbour search (MACE-sized models)
    """

    def __init__(
        self,
        potential: Potential,
        comm=None,
        *,
        decompose_serial: bool = False,
        grid=None,
        skin: Optional[float] = None,
    ):
        from mpi4py import MPI  # deferred: importing mpi4py.MPI initialises MPI

        self._MPI = MPI
        self.potential = potential
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.decompose_serial = decompose_serial
        self.grid = None if grid is None else tuple(grid)
        if self.size > 1 or decompose_serial:
            check_splittable(potential, f"splitting it into {self.size} domain(s)")
        if self.size > 1 and potential.settings.threads == 0:
            _share_cores(self.comm, MPI)
        #: Verlet skin of the domains (engine length unit): halos and pair lists
        #: are reused while no atom moved more than half of it
        self.skin = potential.verlet.skin if skin is None else float(skin)
        self._domains = DomainList(
            potential, self.size, self.rank, self.skin, self.grid
        )
        self._types: Optional[np.ndarray] = None  # the types last broadcast
        # with verify: this step's types as given, broadcast every step
        self._given_types: Optional[np.ndarray] = None
        self._closed = False
        self._in_step = False  # between the first broadcast and the reduction
        self._timings: Dict[str, float] = collections.defaultdict(float)
        #: this rank's domain in the last step (diagnostics, benchmarks)
        self.last_domain = None
        if self.rank == 0 and self.size > 1:
            atexit.register(self._at_exit)

    @property
    def timings(self) -> Dict[str, float]:
        """Seconds spent per phase on this rank: broadcast (on workers including
        the wait for rank 0), domain (locals and ghosts), pairs (vesin), model
        (``potential.compute``), reduce (including the wait for the slowest rank).
        """
        return {**self._timings, **self._domains.timings}

    @property
    def in_step(self) -> bool:
        """True on rank 0 between a step's first broadcast and its reduction: an
        interruption there leaves the workers inside a collective."""
        return self._in_step

    @property
    def pruned(self) -> bool:
        """Whether the domains leave out the pairs between two ghosts (a model
        whose interaction range equals its cutoff: :func:`mlipdrive.halo.short_range`)."""
        return self._domains.evaluator.pruned

    @property
    def pairs_given(self) -> int:
        """How many candidate pairs this rank gave the model in the last step."""
        return self._domains.evaluator.pairs_given

    @property
    def rebuilds(self) -> int:
        """How many times this rank built its domain and pair list."""
        return self._domains.rebuilds

    # ------------------------------------------------------------------ rank 0

    def compute(
        self,
        positions,
        types,
        cell=None,
        pbc=None,
        *,
        forces: bool = True,
        stress: bool = True,
        per_atom: bool = False,
    ) -> Results:
        """On rank 0: the results for the whole structure, as ``potential.compute``
        gives them (same arguments, same units), computed by all ranks (the
        others in :meth:`serve`). An error on any rank is raised here."""
        if self.rank != 0:
            raise RuntimeError(
                f"compute() runs on rank 0 only, this is rank {self.rank}; "
                "the other ranks call serve()"
            )
        if self._closed:
            raise RuntimeError("this DistributedPotential is closed; make a new one")
        if self.size == 1 and not self.decompose_serial:
            return self.potential.compute(
                positions, types, cell, pbc, forces=forces, stress=stress, per_atom=per_atom
            )
        # checked here, so that bad input raises on rank 0 before any message
        positions, types, cell, pbc = self.potential.check_inputs(
            positions, types, cell, pbc
        )
        types_changed = self._types is None or not np.array_equal(types, self._types)
        if types_changed:
            self._check_types(types)
        header = np.array(
            [_COMPUTE, len(types), forces, stress, per_atom, types_changed, *pbc],
            dtype=np.int64,
        )
        self._in_step = True
        with timed(self._timings, "broadcast"):
            self.comm.Ibcast(header, root=0).Wait()
            data = np.concatenate([cell.reshape(-1), positions.reshape(-1)])
            self.comm.Bcast(data, root=0)
            if types_changed:
                self._types = types.copy()
                self.comm.Bcast(self._types, root=0)
            if self.potential.settings.verify:
                self._given_types = types.copy()
                self.comm.Bcast(self._given_types, root=0)
        return self._step(header, positions, cell)

    def close(self):
        """On rank 0: tell the workers to return from :meth:`serve`. Idempotent;
        does nothing on other ranks."""
        if self.rank != 0 or self._closed:
            return
        self._closed = True
        if self.size > 1:
            header = np.zeros(_HEADER_SIZE, dtype=np.int64)
            header[0] = _STOP
            self.comm.Ibcast(header, root=0).Wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _at_exit(self):
        if self._closed:
            return
        if self._in_step:
            # interrupted between two collectives: the workers cannot be told
            # apart from a half-sent step, end the job instead of hanging it
            self.comm.Abort(1)
        self.close()

    # ------------------------------------------------------------------ workers

    def serve(self):
        """On ranks > 0: evaluate this rank's domain for every :meth:`compute` of
        rank 0, until rank 0 calls :meth:`close`. A failed step is reported to
        rank 0 (which raises it) and serving goes on."""
        if self.rank == 0:
            raise RuntimeError("serve() runs on ranks > 0; rank 0 calls compute()")
        header = np.zeros(_HEADER_SIZE, dtype=np.int64)
        while True:
            with timed(self._timings, "broadcast"):
                _wait(self.comm.Ibcast(header, root=0))
                if header[0] == _STOP:
                    return
                n_atoms = int(header[1])
                data = np.empty(9 + 3 * n_atoms)
                self.comm.Bcast(data, root=0)
                if header[5]:
                    self._types = np.empty(n_atoms, dtype=np.int32)
                    self.comm.Bcast(self._types, root=0)
                if self.potential.settings.verify:
                    self._given_types = np.empty(n_atoms, dtype=np.int32)
                    self.comm.Bcast(self._given_types, root=0)
            cell = data[:9].reshape(3, 3)
            positions = data[9:].reshape(n_atoms, 3)
            self._step(header, positions, cell)

    # ------------------------------------------------------------------ one step

    def _step(self, header, positions, cell) -> Optional[Results]:
        """This rank's domain, then the reduction; on rank 0 the results."""
        pbc = header[6:9].astype(bool)
        buffer, error = self._share(header, positions, cell, pbc)
        with timed(self._timings, "reduce"):
            reduced = self._reduce(buffer, error)
        if reduced is None:
            return None
        return self._unpack(reduced, header, cell, pbc)

    def _reduce(self, buffer: np.ndarray, error) -> Optional[np.ndarray]:
        """The shares summed on rank 0 (None on the workers); the workers'
        errors sent to rank 0 and raised there, after the collectives."""
        request = None
        if error is not None and self.rank != 0:
            request = self.comm.isend(error, dest=0, tag=_ERROR_TAG)
        if self.rank == 0:
            self.comm.Reduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM, root=0)
        else:
            self.comm.Reduce(buffer, None, op=self._MPI.SUM, root=0)
        if request is not None:
            request.wait()
        # the step's collectives are done: from here an exception (the workers'
        # errors raised on rank 0) leaves every rank in step
        self._in_step = False
        if self.rank != 0:
            # rank 0's finish() counts it there; the verify messages name it
            self.potential.evaluations += 1
            return None
        failed = int(round(buffer[_FAILED]))
        if failed:
            errors = [] if error is None else [error]
            for _ in range(failed - len(errors)):
                errors.append(self.comm.recv(source=self._MPI.ANY_SOURCE, tag=_ERROR_TAG))
            _raise(errors)
        return buffer

    def _unpack(self, buffer: np.ndarray, header, cell, pbc) -> Results:
        """The whole structure's results from the reduced buffer, checked (every
        atom local in one domain) and finished (:meth:`Potential.finish`)."""
        n_atoms = int(header[1])
        forces, stress, per_atom = bool(header[2]), bool(header[3]), bool(header[4])
        if self.potential.settings.verify:
            check_partition(buffer[len(buffer) - n_atoms :], current_evaluation(self.potential))
        if int(round(buffer[_LOCAL])) != n_atoms:
            raise RuntimeError(
                f"the ranks' domains hold {int(round(buffer[_LOCAL]))} local atoms "
                f"for {n_atoms} atoms: the ranks disagree about the decomposition "
                "(different floating-point results on different nodes?); run on "
                "identical nodes or report this with the structure"
            )
        results = Results(energy=float(buffer[_ENERGY]))
        virial = buffer[_VIRIAL].reshape(3, 3).copy()
        # NaN: a domain had no virial (non-conservative model without stress)
        if stress and np.isfinite(virial).all():
            results.virial = virial
            volume = abs(np.linalg.det(cell))
            if pbc.all() and volume > 0:
                results.stress = -results.virial / volume
        end = _OFFSET
        if forces:
            results.forces = buffer[end : end + 3 * n_atoms].reshape(n_atoms, 3)
            end += 3 * n_atoms
        if per_atom:
            results.energies = buffer[end : end + n_atoms]
            end += n_atoms
        if self.potential.outputs.uncertainty is not None:
            results.energy_uncertainty = buffer[end : end + n_atoms]
        self.potential.finish(results)
        return results

    def _share(self, header, positions, cell, pbc):
        """(this rank's share of the reduction buffer, None) or, if its domain
        failed, (a buffer that only counts the failure, the error to report)."""
        n_atoms = int(header[1])
        forces, stress, per_atom = bool(header[2]), bool(header[3]), bool(header[4])
        uncertainty = self.potential.outputs.uncertainty is not None
        verify = self.potential.settings.verify
        size = _OFFSET + (3 * n_atoms if forces else 0) + (n_atoms if per_atom else 0)
        buffer = np.zeros(size + (n_atoms if uncertainty else 0) + (n_atoms if verify else 0))
        error = None
        try:
            if verify:
                check_kept_types(self._types, self._given_types, current_evaluation(self.potential))
            domain, pairs = self._domains.update(positions, cell, pbc)
            self.last_domain = domain
            with timed(self._timings, "model"):
                share = self._domains.evaluator.evaluate(
                    domain,
                    self._types,
                    forces=forces,
                    stress=stress,
                    per_atom=per_atom,
                    pairs=pairs,
                    structure_cell=cell,
                    structure_pbc=pbc,
                )
            buffer[_LOCAL] = domain.n_local
            buffer[_ENERGY] = share.energy
            if stress:
                virial = share.virial if share.virial is not None else np.full((3, 3), np.nan)
                buffer[_VIRIAL] = virial.reshape(-1)
            end = _OFFSET
            if forces:
                buffer[end : end + 3 * n_atoms] = share.forces.reshape(-1)
                end += 3 * n_atoms
            if per_atom:
                buffer[end : end + n_atoms] = share.energies
                end += n_atoms
            if uncertainty:
                buffer[end : end + n_atoms] = share.energy_uncertainty
            if verify:
                # the last n: in how many domains each atom is local (check_partition)
                np.add.at(buffer, len(buffer) - n_atoms + domain.owners[: domain.n_local], 1.0)
        except Exception as exc:  # noqa: BLE001 -- reported to rank 0, raised there
            error = _failure(self.rank, exc)
            buffer[:] = 0.0
            buffer[_FAILED] = 1.0
        return buffer, error

    # ------------------------------------------------------------------ helpers

    def _check_types(self, types: np.ndarray):
        check_types(types, self.potential.atomic_types)


def _share_cores(comm, MPI):
    """Torch threads for ``threads 0`` with the ranks of ``comm`` that share this
    node (:func:`mlipdrive.settings.torch_threads`): torch's default is every
    core of the node in every rank, and N ranks × N threads on N cores ran many
    times slower than one thread each. A collective operation on ``comm``."""
    import torch

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        ranks_on_node = node.Get_size()
    finally:
        node.Free()
    torch.set_num_threads(torch_threads(0, ranks_on_node))


def _wait(request):
    """Wait for a non-blocking MPI request without spinning a core for long."""
    start = time.perf_counter()
    while not request.Test():
        if time.perf_counter() - start > _SPIN:
            break
    else:
        return
    pause = _SLEEP_MIN
    while not request.Test():
        time.sleep(pause)
        pause = min(2.0 * pause, _SLEEP_MAX)


#: how to run a model that fails in domains, the end of its message
ONE_RANK = "Run it on one MPI rank (without mpirun, or with mpirun -np 1)."


def check_splittable(potential: Potential, where: str):
    """InvalidInput if the model cannot be evaluated on spatial domains: an
    infinite interaction range, or long-range modules (whatever range it
    declares); ``where`` names the split in the message."""
    if not np.isfinite(potential.interaction_range):
        raise InvalidInput(
            "this model declares an infinite interaction range, so it cannot be "
            "split into spatial domains; run it on a single MPI rank"
        )
    modules = long_range_modules(potential.model)
    if modules:
        raise InvalidInput(evaluation_message(
            "split_long_range", model=potential.model.metadata().name or "model",
            modules=", ".join(modules),
            range=f"{potential.interaction_range:g} {potential.units.length}",
            where=where, one_rank=ONE_RANK,
        ))


def _failure(rank: int, exc: Exception):
    """What a failed domain reports to rank 0: (rank, the first known exception
    type it is, message, traceback). When the model itself failed (not the
    input, not a verify check), the message says that it may not support
    domain decomposition and how to run it on one rank."""
    name = next((n for n, cls in _KNOWN_ERRORS.items() if isinstance(exc, cls)), None)
    if name is None and isinstance(exc, torch.jit.Error):
        name = "RuntimeError"  # a TorchScript model's error: its trace is in the message
    name = name or type(exc).__name__
    message = str(exc)
    if not isinstance(exc, (InvalidInput, VerifyError)):
        message = evaluation_message("split_evaluation_failed", error=message.rstrip(), one_rank=ONE_RANK)
    return (rank, name, message, traceback.format_exc())


def _raise(errors):
    """Raise the error of the lowest failed rank on this rank."""
    errors = sorted(errors)
    rank, name, message, trace = errors[0]
    others = f" ({len(errors) - 1} other rank(s) failed too)" if len(errors) > 1 else ""
    text = f"MPI rank {rank}: {message}{others}"
    cls = _KNOWN_ERRORS.get(name)
    if cls is None:
        text = f"MPI rank {rank}: {name}: {message}{others}\n{trace}"
        cls = RuntimeError
    raise cls(text)


__all__ = ["DistributedPotential"]
