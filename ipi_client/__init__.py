"""mlipdrive's own i-PI socket client (``mlipdrive.ipi``).

Command line: ``mlipdrive ipi --model M --structure init.xyz --unix NAME`` (or
``--address HOST --port PORT``); under ``mpirun -np N`` the evaluation is split
over N ranks by spatial domains and rank 0 talks to i-PI. i-PI 3.3's
``<ffsocket mode='shm'>`` (``--shm``) and ``<ffmpi>`` (``--ffmpi``, in one
``mpirun`` job with i-PI) are served too. In Python::

    import mlipdrive, mlipdrive.ipi
    potential = mlipdrive.load("model.pt")            # Å, eV
    code = mlipdrive.ipi.serve(potential.compute, types, unix="NAME")

The wire protocol is in ``_protocol.py`` (shared memory: ``_shm.py``, MPI:
``_ffmpi.py``), the loop and the unit conventions in ``_client.py``, the
serial/MPI launcher in ``_run.py``.
"""

from ._client import (
    BOHR_PER_ANGSTROM,
    DEFAULT_SOCKETS_PREFIX,
    EXIT_CONNECT,
    EXIT_CONNECTION_LOST,
    EXIT_EVALUATION,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_USAGE,
    HARTREE_PER_EV,
    Client,
    ConnectError,
    EvaluationError,
    Evaluator,
    Timings,
    connect,
    parse_pbc,
    serve,
)
from ._protocol import ConnectionLost, Frames, ProtocolError, Wire
from ._run import run

__all__ = [
    "BOHR_PER_ANGSTROM",
    "DEFAULT_SOCKETS_PREFIX",
    "EXIT_CONNECT",
    "EXIT_CONNECTION_LOST",
    "EXIT_EVALUATION",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_USAGE",
    "HARTREE_PER_EV",
    "Client",
    "ConnectError",
    "ConnectionLost",
    "EvaluationError",
    "Evaluator",
    "Frames",
    "ProtocolError",
    "Timings",
    "Wire",
    "connect",
    "parse_pbc",
    "run",
    "serve",
]
