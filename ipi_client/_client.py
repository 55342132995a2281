"""The client loop: answer i-PI's requests with a potential's energy, forces and virial.

Units and conventions at this boundary (and only here):

- i-PI works in atomic units (Bohr, Hartree). The potential is evaluated in Å
  and eV, and we convert with **i-PI's own constants** (``ipi/utils/units.py``:
  1 Å = 1.8897261 Bohr, 1 eV = 0.036749326 Hartree, 1 eV/Å = 0.019446904
  Hartree/Bohr), not with the more precise CODATA ones of metatomic (which
  differ by 1e-8 to 1e-7 relative): i-PI converted the user's input (Å, K, fs)
  with these numbers, so the model sees exactly the structure the user wrote,
  and our trajectories equal those of i-PI's own metatomic driver step for step
  (with the ratio of the energy and length factors for the forces, which is
  2.4e-8 away from i-PI's force factor, they drift apart by ~1e-9 Bohr in 20
  steps).
- i-PI sends the cell ``h`` with lattice vectors as *columns*; mlipdrive (like
  ASE and metatomic) wants them as rows: ``cell = h.T``.
- mlipdrive's virial is ``W_ab = -dE/dε_ab`` with the strain acting on row
  vectors (``r → r (1 + ε)``), i.e. ``Σ r_a f_b`` for pair potentials (LAMMPS's
  layout). i-PI's virial is the same quantity for column vectors, ``Σ f_a r_b``
  (see ``FFLJ`` in ``ipi/engine/forcefields.py`` and ``pes/_ase.py``), the
  transpose. We send its symmetric part ``(W + Wᵀ)/2``, as i-PI's own metatomic
  driver does: a rotation-invariant model's virial is symmetric, and the
  antisymmetric round-off would only rotate the cell of a flexible barostat.
- the extras (a JSON object) carry, as i-PI's metatomic driver writes them, in
  Hartree: ``energy_uncertainty`` (per atom, where the model has it and the
  check is on), ``committee_pot`` / ``committee_force`` / ``committee_virial``
  (the model's energy ensemble, with ``ensemble``), and ``energies`` (per-atom
  energies, with ``per_atom_energies``).
- i-PI does not send periodicity. By default (``pbc="auto"``) the structure is
  periodic along every non-zero lattice vector, as in i-PI's own metatomic
  driver; ``pbc="none"`` evaluates a cluster even if i-PI has a box.
"""

import json
import socket
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from mlipdrive.settings import ON_OFF_WORDS

from ._protocol import (
    EXIT,
    GETFORCE,
    INIT,
    POSDATA,
    STATUS,
    ConnectionLost,
    Frames,
    ProtocolError,
    Wire,
    batch_size_from_init,
    read_init,
    status_reply,
    unexpected_header,
)
from ._shm import SharedFrames

# i-PI's conversion factors (ipi/utils/units.py, UnitMap), checked by the tests
BOHR_PER_ANGSTROM = 1.8897261
HARTREE_PER_EV = 0.036749326
HARTREE_PER_BOHR_PER_EV_PER_ANGSTROM = 0.019446904

# exit codes of the client (also of ``mlipdrive ipi``)
EXIT_OK = 0  # i-PI sent EXIT
EXIT_USAGE = 2  # bad options or inputs, found before connecting
EXIT_CONNECT = 3  # no i-PI server answered in time
EXIT_CONNECTION_LOST = 4  # the server went away without EXIT
EXIT_PROTOCOL = 5  # the server sent something that is not the i-PI protocol
EXIT_EVALUATION = 6  # the model failed on a structure
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM

DEFAULT_SOCKETS_PREFIX = "/tmp/ipi_"  # i-PI's default <simulation sockets_prefix>

#: after a failed evaluation the client closes its connection gently: i-PI, which
#: cannot be told more over its protocol, keeps the structure for another client
IPI_LEFT_WAITING = (
    "closed the connection; i-PI keeps this structure for the next client that "
    "connects and waits for one: stop i-PI with Ctrl-C (SIGINT; it writes a "
    "RESTART file to resume from) once the cause above is fixed"
)


class ConnectError(ConnectionError):
    """No i-PI server could be reached."""


class EvaluationError(RuntimeError):
    """The potential failed on a structure that i-PI sent."""


def log(message: str):
    """Client messages go to stderr, so that stdout stays the user's."""
    print(f"mlipdrive ipi: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- periodicity

def parse_pbc(text: str):
    """'auto', 'none' (or off), 'all' (or on), or three letters such as 'TTF' -> None
    (auto) or (3,) bool; on/off take the words of :data:`mlipdrive.settings.ON_OFF_WORDS`."""
    lowered = text.strip().lower()
    if lowered == "auto":
        return None
    everywhere = {"none": False, "all": True}.get(lowered, ON_OFF_WORDS.get(lowered))
    if everywhere is not None:
        return np.full(3, everywhere)
    letters = lowered.replace(",", "").replace(" ", "")
    if len(letters) == 3 and set(letters) <= {"t", "f", "1", "0"}:
        return np.array([c in "t1" for c in letters])
    raise ValueError(
        f"expected 'auto', 'none', 'all' or three of T/F (e.g. 'TTF') for the "
        f"periodicity, got '{text}'"
    )


# ---------------------------------------------------------------------- evaluation

@dataclass
class Timings:
    """Where the client's time went, in seconds."""

    evaluations: int = 0
    model: float = 0.0  # inside potential.compute
    active: float = 0.0  # from a header's arrival to the end of its handling
    waiting: float = 0.0  # blocked on the socket, waiting for the next message

    @property
    def overhead(self) -> float:
        """Client time outside the model: protocol, copies, unit conversion."""
        return self.active - self.model

    def summary(self) -> str:
        n = max(self.evaluations, 1)
        return (
            f"{self.evaluations} evaluations; per evaluation: model "
            f"{1e3 * self.model / n:.3f} ms, client overhead "
            f"{1e3 * self.overhead / n:.3f} ms, waiting for i-PI "
            f"{1e3 * self.waiting / n:.3f} ms"
        )


class Evaluator:
    """Turns i-PI's structures (Bohr, column cell) into calls of ``compute``.

    :param compute: ``compute(positions, types, cell, pbc, forces=, stress=,
        per_atom=)`` in Å and eV, returning :class:`mlipdrive.Results`
        (``Potential.compute`` or ``DistributedPotential.compute``)
    :param types: atomic numbers, in i-PI's atom order (the structure file's)
    :param pbc: ``None`` (periodic along each non-zero lattice vector) or 3 bools
    :param per_atom_energies: add ``{"energies": [...]}`` (Hartree) to the extras
    :param ensemble: '', 'energy' or 'forces': send the model's energy ensemble
        (and its forces and virials) as ``committee_*`` extras (i-PI's
        ``energy_ensemble`` / ``force_virial_ensemble``)
    """

    def __init__(self, compute: Callable, types, pbc=None, per_atom_energies: bool = False,
                 ensemble: str = ""):
        self.compute = compute
        self.types = np.ascontiguousarray(types, dtype=np.int32)
        self.natoms = len(self.types)
        self.pbc = None if pbc is None else np.asarray(pbc, dtype=bool)
        self.per_atom_energies = per_atom_energies
        # only Potential.compute takes it (the MPI path refuses ensembles first)
        self._options = {"ensemble": ensemble} if ensemble else {}
        self.model_time = 0.0
        self._positions = np.empty((self.natoms, 3))
        self._cell = np.empty((3, 3))

    def __call__(self, frames: Frames, index: int) -> bytes:
        """Evaluate structure ``index`` of ``frames``; fill its reply; return the extras."""
        # Bohr -> Å with i-PI's factor; dividing as i-PI does keeps its round trip exact
        np.divide(frames.positions[index], BOHR_PER_ANGSTROM, out=self._positions)
        np.divide(frames.cells[index].T, BOHR_PER_ANGSTROM, out=self._cell)
        pbc = self.pbc
        if pbc is None:
            pbc = np.abs(self._cell).sum(axis=1) > 0
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results = self.compute(
                    self._positions, self.types, self._cell, pbc,
                    forces=True, stress=True, per_atom=self.per_atom_energies, **self._options,
                )
        except Exception as error:  # the model's own errors name their cause
            raise EvaluationError(f"{type(error).__name__}: {error}") from error
        finally:
            self.model_time += time.perf_counter() - start
        for warning in caught:  # the uncertainty check's warnings, on stderr
            log(f"warning: {warning.message}")
        frames.energies[index] = results.energy * HARTREE_PER_EV
        np.multiply(results.forces, HARTREE_PER_BOHR_PER_EV_PER_ANGSTROM,
                    out=frames.forces[index])
        frames.virials[index] = ipi_virial(results.virial)
        extras = self.extras(results)
        return json.dumps(extras).encode() if extras else b""

    def extras(self, results) -> dict:
        """The extras JSON object of one evaluation, in Hartree (see the module doc)."""
        extras = {}
        if self.per_atom_energies and results.energies is not None:
            extras["energies"] = (np.asarray(results.energies) * HARTREE_PER_EV).tolist()
        if results.energy_uncertainty is not None:
            extras["energy_uncertainty"] = (results.energy_uncertainty * HARTREE_PER_EV).tolist()
        if results.energy_ensemble is not None:
            extras["committee_pot"] = (results.energy_ensemble * HARTREE_PER_EV).tolist()
        if results.forces_ensemble is not None:
            forces = results.forces_ensemble * HARTREE_PER_BOHR_PER_EV_PER_ANGSTROM
            extras["committee_force"] = forces.reshape(-1).tolist()
            virials = np.stack([ipi_virial(v) for v in results.virial_ensemble])
            extras["committee_virial"] = virials.reshape(-1).tolist()
        return extras


def ipi_virial(virial: Optional[np.ndarray]) -> np.ndarray:
    """i-PI's virial (Hartree) from ours (eV): symmetrised, as i-PI's metatomic
    driver does (see the module doc); NaN where there is none (a
    non-conservative model without a stress head, as i-PI's driver sends)."""
    if virial is None:
        return np.full((3, 3), np.nan)
    return 0.5 * (virial + virial.T) * HARTREE_PER_EV


# ---------------------------------------------------------------------- connection

def connect(
    unix: Optional[str] = None,
    address: str = "localhost",
    port: Optional[int] = None,
    sockets_prefix: str = DEFAULT_SOCKETS_PREFIX,
    timeout: float = 60.0,
    verbose: bool = False,
) -> socket.socket:
    """Connect to i-PI, waiting with back-off up to ``timeout`` s for it to start.

    :param unix: UNIX socket name (i-PI's ``<address>``); the socket file is
        ``sockets_prefix + unix``, or ``unix`` itself if it is an absolute path
    :param address, port: INET host and port (used when ``unix`` is None)
    """
    family, target, where = _socket_target(unix, address, port, sockets_prefix)
    sock = _connect_with_retry(family, target, where, timeout)
    if family == socket.AF_INET:
        # i-PI's messages are small and strictly alternate: Nagle's algorithm
        # would hold each reply back for an ACK (ASE's client ran 5x slower)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # notice a server host that disappears without closing the connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if verbose:
        log(f"connected to i-PI at {where}")
    return sock


def _socket_target(unix, address, port, sockets_prefix):
    """``(family, target, description)`` of i-PI's socket, checked before connecting."""
    if unix is not None:
        path = unix if unix.startswith("/") else sockets_prefix + unix
        if len(path.encode()) > 107:
            raise ConnectError(
                f"UNIX socket path '{path}' is {len(path.encode())} bytes, longer "
                "than the 107 the system allows; use a shorter name or prefix"
            )
        return socket.AF_UNIX, path, f"UNIX socket {path}"
    if port is None or not 0 < port < 65536:
        raise ConnectError(f"expected an INET port in 1..65535, got {port}")
    try:
        socket.getaddrinfo(address, port, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConnectError(f"cannot resolve host '{address}': {error}") from None
    return socket.AF_INET, (address, port), f"{address}:{port}"


def _connect_with_retry(family, target, where: str, timeout: float) -> socket.socket:
    """A socket connected to ``target``; retries with back-off while nobody listens."""
    deadline = time.monotonic() + max(timeout, 0.0)
    delay = 0.05
    announced = False
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(1.0, deadline - time.monotonic()))
            sock.connect(target)
            return sock
        except (FileNotFoundError, ConnectionRefusedError, socket.timeout) as error:
            sock.close()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _no_server(family, where, timeout, error) from None
            if not announced:
                log(f"waiting for i-PI at {where} (up to {timeout:g} s)")
                announced = True
            time.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 1.0)
        except OSError as error:
            sock.close()
            raise ConnectError(f"cannot connect to i-PI at {where}: {error}") from error


def _no_server(family, where: str, timeout: float, error: OSError) -> ConnectError:
    stale = (
        " The socket file exists but nobody listens: a stale file from "
        "a crashed i-PI? remove it and restart i-PI."
        if family == socket.AF_UNIX and isinstance(error, ConnectionRefusedError)
        else ""
    )
    return ConnectError(
        f"no i-PI server at {where} after waiting {timeout:g} s "
        f"({type(error).__name__}). Start 'i-pi input.xml' first and check "
        "that the <ffsocket> mode and <address>/<port> match this "
        "client's options (or raise --connect-timeout)." + stale
    )


# ---------------------------------------------------------------------- the loop

class Client:
    """One connection to i-PI, answering its messages until EXIT.

    :param wire: the connected :class:`Wire`
    :param evaluator: the :class:`Evaluator` (fixes the number of atoms)
    :param shm: i-PI's ``mode='shm'``: the numbers go through shared memory
        (:class:`SharedFrames`); call :meth:`close` before closing the socket
    """

    def __init__(self, wire: Wire, evaluator: Evaluator, verbose: bool = False,
                 shm: bool = False):
        self.wire = wire
        self.evaluator = evaluator
        self.verbose = verbose
        self.initialized = False
        self.have_data = False
        self.replica: Optional[int] = None
        self._frames_type = SharedFrames if shm else Frames
        self.frames = self._frames_type(evaluator.natoms, 1)
        self.extras: List[bytes] = [b""]
        self.timings = Timings()

    def run(self):
        """Serve until EXIT (returns) or an error (raises)."""
        wire, timings = self.wire, self.timings
        while True:
            start = time.perf_counter()
            header = wire.read_header()
            arrived = time.perf_counter()
            timings.waiting += arrived - start
            model_before = self.evaluator.model_time
            if header == STATUS:
                wire.send([status_reply(self.initialized, self.have_data)])
            elif header == POSDATA:
                self.frames.read_posdata(wire)
                # i-PI 3.3.1 writes GETFORCE with POSDATA: take it before evaluating
                getforce_waiting = wire.take_header_if(GETFORCE)
                self._evaluate()
                if getforce_waiting:
                    self._send_forces()
            elif header == GETFORCE:
                if not self.have_data:
                    raise unexpected_header(header, "before any POSDATA")
                self._send_forces()
            elif header == INIT:
                self._init()
            elif header == EXIT:
                return
            else:
                raise unexpected_header(header)
            timings.active += time.perf_counter() - arrived
            timings.model += self.evaluator.model_time - model_before

    def _send_forces(self):
        self.wire.send(self.frames.reply_parts(self.extras))
        self.have_data = False

    def _init(self):
        replica, text = read_init(self.wire)
        batch = batch_size_from_init(text)
        if batch != self.frames.batch:
            self.close()
            self.frames = self._frames_type(self.evaluator.natoms, batch)
            self.extras = [b""] * batch
        self.replica = replica
        self.initialized = True
        self.have_data = False
        if self.verbose:
            log(f"INIT for replica {replica} ({text.strip()!r}), batches of {batch}")

    def close(self):
        """Release the shared memory of ``mode='shm'`` (nothing for sockets)."""
        if isinstance(self.frames, SharedFrames):
            self.frames.close()

    def _evaluate(self):
        frames = self.frames
        for index in range(frames.batch):
            if index > 0 and _same_structure(frames, index - 1, index):
                # i-PI pads short batches by repeating the last structure
                frames.energies[index] = frames.energies[index - 1]
                frames.forces[index] = frames.forces[index - 1]
                frames.virials[index] = frames.virials[index - 1]
                self.extras[index] = self.extras[index - 1]
                continue
            self.extras[index] = self.evaluator(frames, index)
            self.timings.evaluations += 1
        self.have_data = True


def _same_structure(frames: Frames, a: int, b: int) -> bool:
    return np.array_equal(frames.positions[a], frames.positions[b]) and np.array_equal(
        frames.cells[a], frames.cells[b]
    )


def close_gently(sock: socket.socket, linger: float = 0.5):
    """Close so that i-PI sees an end of stream, never a reset connection.

    Closing a socket with unread bytes (a STATUS or POSDATA that i-PI just
    sent) makes the kernel reset the connection, and i-PI 3.3.1's polling
    thread dies on the ECONNRESET (the run then hangs). Shutting our side down
    first tells i-PI we are gone (it re-queues the request for another
    client); draining what it had already sent then leaves nothing unread.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.05)
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline:
            try:
                if not sock.recv(1 << 16):
                    break  # i-PI closed its side too
            except socket.timeout:
                continue
    except OSError:
        pass
    finally:
        sock.close()


def serve(
    compute: Callable,
    types,
    *,
    unix: Optional[str] = None,
    address: str = "localhost",
    port: Optional[int] = None,
    sockets_prefix: str = DEFAULT_SOCKETS_PREFIX,
    shm: bool = False,
    pbc=None,
    per_atom_energies: bool = False,
    ensemble: str = "",
    connect_timeout: float = 60.0,
    message_timeout: float = 30.0,
    idle_timeout: float = 0.0,
    verbose: bool = False,
    timings: bool = False,
) -> int:
    """Connect to i-PI and answer it until EXIT; return an exit code (``EXIT_*``).

    Every failure is reported on stderr with its cause; nothing is raised except
    ``KeyboardInterrupt``. See :func:`connect` for the address options,
    :class:`Client` for ``shm`` (i-PI's ``mode='shm'``, over ``unix``) and
    :class:`Evaluator` for ``compute``, ``types``, ``pbc`` and ``per_atom_energies``.
    """
    if shm and unix is None:
        log("error: i-PI's mode='shm' runs over a UNIX socket: give its <address> "
            "as the UNIX socket name")
        return EXIT_USAGE
    evaluator = Evaluator(
        compute, types, pbc=pbc, per_atom_energies=per_atom_energies, ensemble=ensemble
    )
    try:
        sock = connect(unix, address, port, sockets_prefix, connect_timeout, verbose)
    except ConnectError as error:
        log(f"error: {error}")
        return EXIT_CONNECT
    client = Client(Wire(sock, message_timeout, idle_timeout), evaluator, verbose, shm)
    try:
        code = _serve_until_exit(client)
        if code == EXIT_OK and (verbose or timings):
            log("i-PI sent EXIT; " + client.timings.summary())
    finally:
        client.close()  # before the socket: see _shm.py
        close_gently(sock)
    if code != EXIT_OK and timings:
        log(client.timings.summary())
    return code


def _serve_until_exit(client: Client) -> int:
    """Run ``client`` to i-PI's EXIT; report a failure and return its exit code."""
    code = EXIT_OK
    try:
        client.run()
    except ConnectionLost as error:
        log(f"error: {error} ({client.timings.evaluations} evaluations done)")
        code = EXIT_CONNECTION_LOST
    except ProtocolError as error:
        log(f"error: protocol: {error}")
        code = EXIT_PROTOCOL
    except EvaluationError as error:
        log(
            f"error: the model failed on the structure i-PI sent (evaluation "
            f"{client.timings.evaluations + 1}): {error}"
        )
        log(IPI_LEFT_WAITING)
        code = EXIT_EVALUATION
    return code

