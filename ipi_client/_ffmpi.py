"""i-PI's ``<ffmpi>`` transport, client side: i-PI and the clients in one MPMD job
(``mpirun -disable-auto-cleanup -n 1 i-pi input.xml : -n K mlipdrive-ipi-driver
--mpi ...``; the flag: see examples/ipi/README.md).

i-PI is one rank of ``MPI_COMM_WORLD`` (``server_rank``, 0 by default). The
client ranks split the world (i-PI takes colour 0, the clients of one
``<ffmpi>`` colour ``1 + mpi_id``), then into groups of ``group_size``
consecutive ranks. The root of each group says HELLO to i-PI (int32
``[world rank, group size, world ranks of the group...]``, then the ``<ffmpi>``
name as bytes) and from then on answers it, point to point, with tags:

=========  ====================================================================
tag        message
=========  ====================================================================
INIT (2)   from i-PI, once: int32 ``[replica, length]``, then the string
WORK (3)   from i-PI: int32 ``[natoms, count]``, then float64 ``count`` ×
           (9 cell ``h``, 9 inverse cell, 3·natoms positions), i-PI's units
RESULT (4) to i-PI: float64 ``count`` × (energy, 3·natoms forces, 9 virial)
EXTRA (5)  to i-PI, after RESULT: bytes ``count`` × (int32 length, extras)
EXIT (6)   from i-PI: one int32; the client stops
=========  ====================================================================

``count`` is at most the ``<batch_size>``, never padded. The other ranks of a
group are mlipdrive's domain decomposition of each structure (see ``_run.py``).
There is no connection to close gently: a client that stops before EXIT ends
the whole job (``MPI_Abort``) rather than leave i-PI waiting for ever.
"""

import sys
import time
from typing import Dict

import numpy as np

from ._client import EXIT_USAGE, Evaluator, Timings, log
from ._protocol import MAX_BATCH, ProtocolError, check_natoms

TAG_HELLO, TAG_INIT, TAG_WORK, TAG_RESULT, TAG_EXTRA, TAG_EXIT = 1, 2, 3, 4, 5, 6

# mpirun relays a rank's stderr through a pipe of its own, which MPI_Abort can
# end before it was read (on a loaded machine the cause of the failure was
# lost once in a full `make test`): the rank waits this long after its last words
OUTPUT_RELAY_GRACE_S = 1.0


def end_ffmpi_job(code: int):
    """End the whole MPMD job with ``MPI_Abort(code)`` when this process is one
    of several MPI ranks (else nothing): i-PI cannot be told over MPI, and under
    ``mpirun -disable-auto-cleanup`` (examples/ipi/README.md) a client that
    merely exited would leave i-PI and the other ranks waiting for ever."""
    from ._run import launched_with_mpi

    if not launched_with_mpi():
        return
    log(f"stopping the whole MPI job (exit code {code}): i-PI would wait for ever "
        "for this client's results")
    sys.stdout.flush()
    time.sleep(OUTPUT_RELAY_GRACE_S)
    from mpi4py import MPI

    MPI.COMM_WORLD.Abort(code)


def command_line_errors_end_ffmpi_job(parser, switch: str):
    """A wrong command line given with ``switch`` (the <ffmpi> one) ends the
    whole job (:func:`end_ffmpi_job`) once ``parser`` has said what is wrong."""
    report = parser.error

    def error(message):
        try:
            report(message)
        finally:
            if switch in sys.argv[1:]:
                end_ffmpi_job(EXIT_USAGE)

    parser.error = error


def join_ipi_world(world, server_rank: int, group_size: int, name: str = "",
                   colour: int = 0):
    """Split the clients off ``world`` as i-PI expects; say HELLO from each group's
    root; return this rank's group (a collective over every client rank)."""
    from mpi4py import MPI

    clients = world.Split(color=1 + colour, key=world.Get_rank())
    group = clients.Split(color=clients.Get_rank() // group_size, key=clients.Get_rank())
    members = group.allgather(world.Get_rank())
    if group.Get_rank() == 0:
        hello = np.array([world.Get_rank(), group.Get_size(), *members], dtype=np.int32)
        world.Send([hello, MPI.INT], dest=server_rank, tag=TAG_HELLO)
        world.Send([np.frombuffer(name.encode(), dtype=np.uint8), MPI.BYTE],
                   dest=server_rank, tag=TAG_HELLO)
    return group


class PackedFrames:
    """Views of one WORK message and its RESULT, shaped as :class:`~._protocol.Frames`."""

    def __init__(self, natoms: int, count: int):
        stride = 18 + 3 * natoms
        self.batch = count
        self.body = np.empty(count * stride, dtype=np.float64)
        packed = self.body.reshape(count, stride)
        self.cells = packed[:, :9].reshape(count, 3, 3)
        self.positions = packed[:, 18:].reshape(count, natoms, 3)
        stride = 1 + 3 * natoms + 9
        self.result = np.empty(count * stride, dtype=np.float64)
        packed = self.result.reshape(count, stride)
        self.energies = packed[:, 0]
        self.forces = packed[:, 1:1 + 3 * natoms].reshape(count, natoms, 3)
        self.virials = packed[:, 1 + 3 * natoms:].reshape(count, 3, 3)


class MpiLink:
    """The root of a client group, answering i-PI over MPI until EXIT.

    :param world: the communicator that holds i-PI (``MPI_COMM_WORLD``)
    :param server_rank: i-PI's rank in ``world``
    :param evaluator: the :class:`Evaluator` (fixes the number of atoms)
    """

    def __init__(self, world, server_rank: int, evaluator: Evaluator, verbose: bool = False):
        from mpi4py import MPI

        self._MPI = MPI
        self.world = world
        self.server = server_rank
        self.evaluator = evaluator
        self.verbose = verbose
        self.timings = Timings()
        self._frames: Dict[int, PackedFrames] = {}

    def run(self):
        """Serve until EXIT (returns) or an error (raises)."""
        MPI, status = self._MPI, self._MPI.Status()
        while True:
            start = time.perf_counter()
            self.world.Probe(source=self.server, tag=MPI.ANY_TAG, status=status)
            arrived = time.perf_counter()
            self.timings.waiting += arrived - start
            tag = status.Get_tag()
            if tag == TAG_WORK:
                self._work()
                self.timings.active += time.perf_counter() - arrived
            elif tag == TAG_INIT:
                self._init()
            elif tag == TAG_EXIT:
                self.world.Recv([np.empty(1, np.int32), MPI.INT], source=self.server,
                                tag=TAG_EXIT)
                return
            else:
                raise ProtocolError(f"i-PI sent an MPI message with tag {tag}, which "
                                    "the <ffmpi> protocol does not have")

    def _init(self):
        MPI = self._MPI
        head = np.empty(2, dtype=np.int32)
        self.world.Recv([head, MPI.INT], source=self.server, tag=TAG_INIT)
        text = np.empty(max(int(head[1]), 0), dtype=np.uint8)
        self.world.Recv([text, MPI.BYTE], source=self.server, tag=TAG_INIT)
        if self.verbose:
            log(f"INIT for replica {int(head[0])} ({text.tobytes().decode(errors='replace')!r})")

    def _work(self):
        MPI = self._MPI
        head = np.empty(2, dtype=np.int32)
        self.world.Recv([head, MPI.INT], source=self.server, tag=TAG_WORK)
        natoms, count = int(head[0]), int(head[1])
        check_natoms(natoms, self.evaluator.natoms)
        if not 1 <= count <= MAX_BATCH:
            raise ProtocolError(f"i-PI sent {count} structures at once; expected 1 to "
                                f"{MAX_BATCH}")
        frames = self._frames.get(count) or self._frames.setdefault(
            count, PackedFrames(natoms, count))
        self.world.Recv([frames.body, MPI.DOUBLE], source=self.server, tag=TAG_WORK)
        model_before = self.evaluator.model_time
        extras = [self.evaluator(frames, index) for index in range(count)]
        self.timings.evaluations += count
        self.timings.model += self.evaluator.model_time - model_before
        self.world.Send([frames.result, MPI.DOUBLE], dest=self.server, tag=TAG_RESULT)
        packed = b"".join(np.int32(len(extra)).tobytes() + extra for extra in extras)
        self.world.Send([np.frombuffer(packed, dtype=np.uint8), MPI.BYTE],
                        dest=self.server, tag=TAG_EXTRA)
