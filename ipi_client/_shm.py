"""i-PI's ``<ffsocket mode='shm'>`` transport, client side: the numbers through
POSIX shared memory, the control messages over the UNIX socket.

i-PI (the server) creates one segment per quantity and per connection, sized for
a whole batch (``batch_size`` from INIT, 1 without batching), all float64:
``pos`` (B, 3·natoms), ``h`` and ``ih`` (B, 3, 3), ``pot`` (B), ``force``
(B, 3·natoms), ``vir`` (B, 3, 3), in i-PI's units and layouts (those of the
socket protocol, see ``_protocol.py``). On the socket:

====================  =========================================================
server sends          client answers
====================  =========================================================
``POSDATA``           nothing; payload: int32 natoms, then on the first POSDATA
                      of a connection only, for each segment in the order above:
                      int32 length, its name (no leading slash)
``GETFORCE``          ``FORCEREADY`` once ``pot``, ``force`` and ``vir`` hold the
                      results, then for each structure: int32 length, extras
====================  =========================================================

STATUS, INIT and EXIT are those of the socket protocol. The segments belong to
i-PI, but a client outlives a killed server: the client unlinks every segment it
attached when it leaves (EXIT, error, signal), before it closes the socket, so
that nothing stays in ``/dev/shm`` whoever stops first (i-PI ignores a segment
already unlinked when it frees its own, and names the segments of its next
connection only after it saw this one closed).
"""

import mmap
import os
from typing import Dict, List

import numpy as np

from ._protocol import FORCEREADY, MAX_BATCH, ProtocolError, Wire, check_natoms

#: the segments i-PI names on the first POSDATA, in its order
SEGMENTS = ("pos", "h", "ih", "pot", "force", "vir")
#: where Linux keeps POSIX shared memory (``shm_open`` names live here)
SHM_DIRECTORY = "/dev/shm"
MAX_NAME_BYTES = 255

_INT32 = np.dtype(np.int32)


def _segment_shapes(batch: int, natoms: int) -> Dict[str, tuple]:
    matrix = (batch, 3, 3)
    return {"pos": (batch, natoms, 3), "h": matrix, "ih": matrix, "pot": (batch,),
            "force": (batch, natoms, 3), "vir": matrix}


class SharedFrames:
    """The structures of one POSDATA and their results, in i-PI's shared memory.

    Same attributes as :class:`~._protocol.Frames` (``positions``, ``cells``,
    ``energies``, ``forces``, ``virials``, ``batch``), but views of the
    segments: the evaluation writes its results where i-PI reads them.
    Nothing is attached before the first POSDATA; :meth:`close` unlinks.
    """

    def __init__(self, natoms: int, batch: int = 1):
        self.natoms = natoms
        self.batch = batch
        self.names: List[str] = []
        self._maps: List[mmap.mmap] = []
        self._views: Dict[str, np.ndarray] = {}

    @property
    def attached(self) -> bool:
        return bool(self._views)

    # ------------------------------------------------------------ the segments

    def _read_names(self, wire: Wire) -> List[str]:
        names = []
        length = np.empty(1, dtype=_INT32)
        for kind in SEGMENTS:
            wire.read_into(length, f"the length of the name of shared segment '{kind}'")
            if not 0 < int(length[0]) <= MAX_NAME_BYTES:
                raise ProtocolError(
                    f"POSDATA announces a shared-memory name of {int(length[0])} bytes "
                    f"for '{kind}'; expected 1 to {MAX_NAME_BYTES}: is the server's "
                    "<ffsocket> in mode='shm'?"
                )
            raw = bytearray(int(length[0]))
            wire.read_into(raw, f"the name of shared segment '{kind}'")
            name = raw.decode("utf-8", errors="replace")
            if "/" in name or name in (".", ".."):
                raise ProtocolError(f"shared-memory segment name {name!r} is not a plain name")
            names.append(name)
        return names

    def _attach(self, names: List[str]):
        """Map every named segment, checking that it holds what it must."""
        self.names = names
        shapes = _segment_shapes(self.batch, self.natoms)
        for kind, name in zip(SEGMENTS, names):
            path = os.path.join(SHM_DIRECTORY, name)
            needed = 8 * int(np.prod(shapes[kind]))
            try:
                descriptor = os.open(path, os.O_RDWR)
            except OSError as error:
                raise ProtocolError(
                    f"cannot open i-PI's shared segment {path}: {error.strerror} (the "
                    "client must run on the server's machine, as the same user, on a "
                    f"system with POSIX shared memory in {SHM_DIRECTORY})"
                ) from None
            try:
                size = os.fstat(descriptor).st_size
                if size < needed:
                    raise ProtocolError(
                        f"i-PI's shared segment '{kind}' holds {size} bytes, fewer than "
                        f"the {needed} of {self.batch} structure(s) of {self.natoms} atoms"
                    )
                self._maps.append(mmap.mmap(descriptor, needed))
            finally:
                os.close(descriptor)
            self._views[kind] = np.ndarray(shapes[kind], np.float64, buffer=self._maps[-1])
        self.positions = self._views["pos"]
        self.cells = self._views["h"]
        self.energies = self._views["pot"]
        self.forces = self._views["force"]
        self.virials = self._views["vir"]

    def close(self):
        """Unlink the segments (see the module doc) and drop our mappings; safe
        to repeat. A mapping is never closed here: a numpy array made on an mmap
        does not pin it (``mmap.close()`` would unmap under a view that a
        traceback still holds), so each goes with the last array on it."""
        self._views.clear()
        self.positions = self.cells = self.energies = self.forces = self.virials = None
        self._maps.clear()
        for name in self.names:
            try:
                os.unlink(os.path.join(SHM_DIRECTORY, name))
            except FileNotFoundError:
                pass  # i-PI freed it first
        self.names = []

    # ------------------------------------------------------------ the messages

    def read_posdata(self, wire: Wire):
        """The socket part of POSDATA; attaches the segments on the first one."""
        natoms = np.empty(1, dtype=_INT32)
        wire.read_into(natoms, "POSDATA (natoms)")
        check_natoms(int(natoms[0]), self.natoms)
        if not self.attached:
            if not 1 <= self.batch <= MAX_BATCH:
                raise ProtocolError(f"batch of {self.batch} structures out of range")
            self._attach(self._read_names(wire))

    def reply_parts(self, extras: List[bytes]) -> list:
        """FORCEREADY and the extras: the numbers are already in shared memory."""
        parts = [FORCEREADY]
        for extra in extras:
            parts += [np.array([len(extra)], dtype=_INT32), extra]
        return parts

