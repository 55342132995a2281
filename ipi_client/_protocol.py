"""The i-PI wire protocol, client side: exact-size reads into numpy buffers.

Every message starts with a 12-byte header, an upper-case word padded with
spaces. The server (i-PI) asks, the client answers:

====================  =========================================================
server sends          client answers
====================  =========================================================
``STATUS``            ``NEEDINIT`` (before INIT), ``HAVEDATA`` (between POSDATA
                      and GETFORCE) or ``READY``
``INIT``              nothing; payload: int32 replica index, int32 length, string
``POSDATA``           nothing; payload: 9 float64 cell ``h`` (lattice vectors as
                      *columns*, C order), 9 float64 inverse cell, int32 natoms,
                      3·natoms float64 positions; all lengths in Bohr
``GETFORCE``          ``FORCEREADY``, float64 energy (Hartree), int32 natoms,
                      3·natoms float64 forces (Hartree/Bohr), 9 float64 virial
                      (Hartree), int32 length, extras string (JSON or empty)
``EXIT``              nothing; the client stops
====================  =========================================================

All numbers are native-endian (i-PI and its drivers share one machine type).
i-PI 3.3.1 writes POSDATA and GETFORCE in one ``sendall`` with no STATUS in
between; reading exactly the bytes of each field, never more, handles that and
any split of a message over several reads the same way.

Batched mode (i-PI ``<batch_size>`` > 1, announced as ``batch_size:B`` in the
INIT string): POSDATA carries int32 natoms, then B × 18 float64 (cell and inverse
cell of each structure), then B × 3·natoms float64 positions; the FORCEREADY
reply carries B float64 energies, int32 natoms, B × 3·natoms forces, B × 9
virials, then B × (int32 length, extras string).

Nothing here trusts a size sent by the peer: natoms must equal the size fixed
when the client was made (the structure file's), lengths of strings and batches
are bounded, and every buffer is allocated before the first message arrives or
once per batch size.
"""

import select
import socket
import time
from typing import List, Optional, Sequence

import numpy as np

HEADER_SIZE = 12


def _header(word: str) -> bytes:
    return word.upper().ljust(HEADER_SIZE).encode("ascii")


STATUS = _header("STATUS")
READY = _header("READY")
NEEDINIT = _header("NEEDINIT")
HAVEDATA = _header("HAVEDATA")
INIT = _header("INIT")
POSDATA = _header("POSDATA")
GETFORCE = _header("GETFORCE")
FORCEREADY = _header("FORCEREADY")
EXIT = _header("EXIT")

KNOWN_HEADERS = (STATUS, INIT, POSDATA, GETFORCE, EXIT)

# bounds on what a peer may ask us to read; anything larger is refused, unread
MAX_INIT_BYTES = 1 << 20  # the INIT string (i-PI sends a few bytes of parameters)
MAX_BATCH = 1024  # structures per batched POSDATA (i-PI: usually the beads)
MAX_MESSAGE_BYTES = 1 << 29  # positions of one batched POSDATA: 512 MiB

_INT32 = np.dtype(np.int32)
_FLOAT64 = np.dtype(np.float64)


class ProtocolError(RuntimeError):
    """The server sent something the i-PI protocol does not allow."""


class ConnectionLost(ConnectionError):
    """The server closed the connection (or it broke) before sending EXIT."""


def describe_header(raw: bytes) -> str:
    """A header as text for error messages, non-printable bytes escaped."""
    text = raw.decode("ascii", errors="backslashreplace")
    return repr(text) if text.isprintable() else repr(raw)


class Wire:
    """Exact-size reads and gathered writes on a connected stream socket.

    :param sock: a connected ``SOCK_STREAM`` socket
    :param message_timeout: seconds (float) that the rest of a message may take
        once its first byte has arrived; a peer that stops in the middle of a
        message is an error after that long, never a hang
    :param idle_timeout: seconds to wait for the next message; 0 waits forever
        (i-PI may leave a client idle for long, e.g. while other clients work)
    """

    def __init__(self, sock: socket.socket, message_timeout: float = 30.0,
                 idle_timeout: float = 0.0):
        if message_timeout <= 0:
            raise ValueError(f"message_timeout must be > 0 seconds, got {message_timeout}")
        self.sock = sock
        self.message_timeout = float(message_timeout)
        self.idle_timeout = float(idle_timeout)
        # the socket wakes up this often; a timeout between messages is not an error
        wake = self.message_timeout
        if self.idle_timeout > 0:
            wake = min(wake, self.idle_timeout)
        sock.settimeout(wake)
        self._header = bytearray(HEADER_SIZE)
        self._header_view = memoryview(self._header)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)

    # ------------------------------------------------------------------ reading

    def read_header(self) -> bytes:
        """The next 12-byte header; waits as long as ``idle_timeout`` allows.

        :raises ConnectionLost: the peer closed the connection between messages
        """
        view = self._header_view
        received = 0
        idle_since = time.monotonic()
        while received == 0:
            try:
                received = self.sock.recv_into(view, HEADER_SIZE)
            except socket.timeout:
                if self.idle_timeout > 0 and time.monotonic() - idle_since > self.idle_timeout:
                    raise ConnectionLost(
                        f"no message from i-PI for {self.idle_timeout:g} s (idle timeout); "
                        "is the server stuck? raise --idle-timeout or set it to 0 to "
                        "wait forever"
                    ) from None
                continue
            except (ConnectionResetError, BrokenPipeError):
                received = 0  # the server died with our last reply unread
            except OSError as error:
                raise ConnectionLost(f"the connection to i-PI broke: {error}") from error
            if received == 0:
                raise ConnectionLost(
                    "i-PI closed the connection without sending EXIT (the server "
                    "stopped or crashed; see its output)"
                )
        if received < HEADER_SIZE:
            self._read_exact(view[received:], "a message header", received, HEADER_SIZE)
        return bytes(self._header)

    def take_header_if(self, expected: bytes) -> bool:
        """Consume the next header now if it has already arrived and is ``expected``.

        Used for the GETFORCE that i-PI writes together with POSDATA: taking it
        before a long evaluation leaves nothing unread in our receive buffer, so
        that a client killed mid-evaluation closes with FIN, not RST. (i-PI 3.3.1
        re-queues the request of a client that closed, but its polling thread
        dies on the ECONNRESET of a reset connection, and the run hangs.)
        """
        try:
            if not self._poll.poll(0):
                return False
            peeked = self.sock.recv(HEADER_SIZE, socket.MSG_PEEK)
        except OSError:
            return False  # the normal read will report it
        if peeked != expected:
            return False
        self.sock.recv_into(self._header_view, HEADER_SIZE)  # already here: no wait
        return True

    def read_into(self, buffer, what: str):
        """Fill ``buffer`` (a C-contiguous numpy array or bytearray) exactly."""
        view = memoryview(buffer).cast("B")
        self._read_exact(view, what, 0, view.nbytes)

    def _read_exact(self, view: memoryview, what: str, done: int, total: int):
        """Read ``len(view)`` bytes; ``done``/``total`` describe the whole field."""
        deadline = time.monotonic() + self.message_timeout
        offset, size = 0, len(view)
        while offset < size:
            try:
                count = self.sock.recv_into(view[offset:], size - offset)
            except socket.timeout:
                count = -1
            except (ConnectionResetError, BrokenPipeError):
                count = 0
            except OSError as error:
                raise ConnectionLost(
                    f"the connection to i-PI broke while reading {what} "
                    f"(after {done + offset} of {total} bytes): {error}"
                ) from error
            if count == 0:
                raise ConnectionLost(
                    f"i-PI closed the connection in the middle of {what} (after "
                    f"{done + offset} of {total} bytes): the message was truncated"
                )
            if count > 0:
                offset += count
            if offset < size and time.monotonic() > deadline:
                raise ProtocolError(
                    f"the server stopped sending in the middle of {what} (after "
                    f"{done + offset} of {total} bytes, nothing more for "
                    f"{self.message_timeout:g} s): the message was truncated; "
                    "raise --message-timeout if the network is that slow"
                )

    # ------------------------------------------------------------------ writing

    def send(self, parts: Sequence):
        """Send every byte of ``parts`` (buffers), in order, in as few writes as possible."""
        views = [memoryview(part).cast("B") for part in parts]
        views = [view for view in views if view.nbytes]
        deadline = time.monotonic() + self.message_timeout
        while views:
            try:
                sent = self.sock.sendmsg(views)
            except socket.timeout:
                sent = 0
            except (ConnectionResetError, BrokenPipeError):
                raise ConnectionLost(
                    "i-PI closed the connection without sending EXIT, while this "
                    "client was sending a reply (the server stopped or crashed; see "
                    "its output)"
                ) from None
            except OSError as error:
                raise ConnectionLost(
                    f"the connection to i-PI broke while sending a reply: {error}"
                ) from error
            # drop what went out; a partial write leaves the rest of a view
            while sent > 0 and views:
                if sent >= views[0].nbytes:
                    sent -= views[0].nbytes
                    views.pop(0)
                else:
                    views[0] = views[0][sent:]
                    sent = 0
            if views and time.monotonic() > deadline:
                raise ConnectionLost(
                    f"could not send a reply to i-PI within {self.message_timeout:g} s "
                    "(the server does not read); giving up"
                )


def read_init(wire: Wire, max_bytes: int = MAX_INIT_BYTES):
    """The payload of an INIT message: ``(replica index, init string)``."""
    head = np.empty(2, dtype=_INT32)
    wire.read_into(head, "the INIT message (replica index and string length)")
    replica, length = int(head[0]), int(head[1])
    if not 0 <= length <= max_bytes:
        raise ProtocolError(
            f"INIT announces a string of {length} bytes; expected 0 to {max_bytes} "
            "(i-PI sends a few bytes of parameters): the stream is corrupt or the "
            "server is not i-PI"
        )
    text = bytearray(length)
    if length:
        wire.read_into(text, f"the INIT string ({length} bytes)")
    return replica, text.decode("utf-8", errors="replace")


def batch_size_from_init(text: str) -> int:
    """The ``batch_size:B`` token i-PI adds to the INIT string in batched mode (else 1)."""
    batch = 1
    for token in text.split(","):
        key, sep, value = token.partition(":")
        if sep and key.strip() == "batch_size":
            try:
                batch = int(value.strip())
            except ValueError:
                raise ProtocolError(
                    f"INIT string has 'batch_size:{value.strip()}', expected an integer"
                ) from None
    if not 1 <= batch <= MAX_BATCH:
        raise ProtocolError(
            f"INIT asks for batches of {batch} structures; expected 1 to {MAX_BATCH}"
        )
    return batch


class Frames:
    """Buffers for the structures of one POSDATA and the replies to GETFORCE.

    Allocated once for ``natoms`` and ``batch`` structures; ``natoms`` from the
    wire must equal ours, so nothing a peer sends can resize them.
    """

    def __init__(self, natoms: int, batch: int = 1):
        if natoms <= 0:
            raise ValueError(f"natoms must be positive, got {natoms}")
        if not 1 <= batch <= MAX_BATCH:
            raise ValueError(f"batch must be in [1, {MAX_BATCH}], got {batch}")
        if batch > 1 and 24 * natoms * batch > MAX_MESSAGE_BYTES:
            raise ProtocolError(
                f"a batch of {batch} × {natoms} atoms needs "
                f"{24 * natoms * batch / 2**20:.0f} MiB per message, more than the "
                f"{MAX_MESSAGE_BYTES / 2**20:.0f} MiB allowed; use a smaller "
                "<batch_size> in i-PI's <ffsocket>"
            )
        self.natoms = natoms
        self.batch = batch
        if batch == 1:
            # cell (9 f64), inverse cell (9 f64), natoms (i32): one read of 148 bytes
            self._head = np.empty(148, dtype=np.uint8)
            self._cells = self._head[:144].view(_FLOAT64).reshape(1, 2, 3, 3)
            self._natoms = self._head[144:].view(_INT32)
        else:
            self._natoms = np.empty(1, dtype=_INT32)
            self._cells = np.empty((batch, 2, 3, 3), dtype=_FLOAT64)
        self.positions = np.empty((batch, natoms, 3), dtype=_FLOAT64)
        self.cells = self._cells[:, 0]  # h: lattice vectors as columns, Bohr

        # the fixed part of the reply, filled in place (numpy handles unaligned views)
        size_energy = 8 * batch
        self.reply = np.zeros(HEADER_SIZE + size_energy + 4 + 24 * natoms * batch
                              + 72 * batch + (4 if batch == 1 else 0), dtype=np.uint8)
        self.reply[:HEADER_SIZE] = np.frombuffer(FORCEREADY, dtype=np.uint8)
        offset = HEADER_SIZE
        self.energies = self.reply[offset:offset + size_energy].view(_FLOAT64)
        offset += size_energy
        self.reply[offset:offset + 4].view(_INT32)[0] = natoms
        offset += 4
        self.forces = self.reply[offset:offset + 24 * natoms * batch].view(
            _FLOAT64).reshape(batch, natoms, 3)
        offset += 24 * natoms * batch
        self.virials = self.reply[offset:offset + 72 * batch].view(
            _FLOAT64).reshape(batch, 3, 3)
        offset += 72 * batch
        # non-batched: the extras length closes the fixed part; batched: one
        # (length, string) pair per structure follows
        self._extras_length = self.reply[offset:].view(_INT32) if batch == 1 else None

    def read_posdata(self, wire: Wire):
        """Read the POSDATA payload (after its header) into :attr:`positions` and :attr:`cells`."""
        if self.batch == 1:
            wire.read_into(self._head, "POSDATA (cell, inverse cell, natoms)")
            check_natoms(int(self._natoms[0]), self.natoms)
        else:
            wire.read_into(self._natoms, "batched POSDATA (natoms)")
            check_natoms(int(self._natoms[0]), self.natoms)
            wire.read_into(self._cells, f"batched POSDATA ({self.batch} cells)")
        wire.read_into(
            self.positions,
            f"POSDATA positions ({self.batch} × {self.natoms} atoms)",
        )

    def reply_parts(self, extras: List[bytes]) -> list:
        """The FORCEREADY message, as buffers to send in order."""
        if self.batch == 1:
            self._extras_length[0] = len(extras[0])
            return [self.reply, extras[0]]
        parts = [self.reply]
        for text in extras:
            parts.append(np.array([len(text)], dtype=_INT32))
            parts.append(text)
        return parts


def check_natoms(natoms: int, expected: int):
    """The number of atoms in a POSDATA must be the client's (its structure file's)."""
    if natoms != expected:
        raise ProtocolError(
            f"i-PI sent positions of {natoms} atoms, but this client serves "
            f"{expected} atoms (from the structure file). With an <activelist> "
            "in the <ffsocket>, i-PI sends only the active atoms: give the client "
            "--active with the same indices (and the structure that initialises "
            "i-PI), or a structure of just those atoms in that order; otherwise "
            "give the structure that initialises i-PI. (A client whose transport "
            "differs from the <ffsocket mode> reads nonsense here: add --shm for "
            "mode='shm', and only then.)"
        )


def status_reply(initialized: bool, have_data: bool) -> bytes:
    """The answer to STATUS."""
    if not initialized:
        return NEEDINIT
    return HAVEDATA if have_data else READY


def unexpected_header(raw: bytes, expected: Optional[str] = None) -> ProtocolError:
    """The error for a header this client does not know (or does not expect now)."""
    known = ", ".join(h.decode().strip() for h in KNOWN_HEADERS)
    if raw in KNOWN_HEADERS:
        return ProtocolError(
            f"i-PI sent {describe_header(raw)} {expected}; the server and the "
            "client disagree about the protocol state"
        )
    return ProtocolError(
        f"unknown message header {describe_header(raw)} from the server; expected "
        f"one of {known}. Is the address that of an i-PI <ffsocket> in 'unix' or "
        "'inet' mode (or 'shm', with --shm)?"
    )
