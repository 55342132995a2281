"""The i-PI client's wire protocol, against i-PI's own server-side socket class and
against hostile peers (random bytes, truncations, absurd sizes).

No model and no i-PI process here: a fake potential whose answers depend on its
input, with an asymmetric virial so that its symmetrisation on the wire (as i-PI's
metatomic driver does) is checked.
"""

import contextlib
import json
import socket
import threading
import time
import tracemalloc

import numpy as np
import pytest

from mlipdrive import Results
from mlipdrive.ipi import (
    BOHR_PER_ANGSTROM,
    EXIT_CONNECT,
    EXIT_CONNECTION_LOST,
    EXIT_EVALUATION,
    EXIT_OK,
    EXIT_PROTOCOL,
    HARTREE_PER_EV,
    Client,
    ConnectError,
    ConnectionLost,
    EvaluationError,
    Evaluator,
    ProtocolError,
    Wire,
    connect,
    parse_pbc,
    serve,
)
from mlipdrive.ipi import _protocol as P
from mlipdrive.ipi._client import HARTREE_PER_BOHR_PER_EV_PER_ANGSTROM
from ipi_testing import free_port, unique_address

NATOMS = 5
TYPES = np.full(NATOMS, 18)


class FakePotential:
    """Answers that depend on positions and cell (Å, eV); an asymmetric virial."""

    def __init__(self, fail=False):
        self.calls = []
        self.fail = fail

    def compute(self, positions, types, cell, pbc, *, forces=True, stress=True,
                per_atom=False):
        if self.fail:
            raise FloatingPointError("the model returned a non-finite energy")
        self.calls.append((positions.copy(), types.copy(), cell.copy(), np.array(pbc)))
        virial = np.arange(9.0).reshape(3, 3) + cell.sum() * np.eye(3)
        return Results(
            energy=float(np.sum(positions**2)),
            forces=-2.0 * positions,
            virial=virial,
            energies=(positions**2).sum(axis=1) if per_atom else None,
        )


@contextlib.contextmanager
def running_client(potential=None, natoms=NATOMS, pbc=None, per_atom=False,
                   message_timeout=5.0, idle_timeout=0.0):
    """A client loop in a thread on one end of a socket pair; yields the other end."""
    server, client_end = socket.socketpair()
    server.settimeout(10.0)
    potential = potential or FakePotential()
    evaluator = Evaluator(potential.compute, np.full(natoms, 18), pbc, per_atom)
    client = Client(Wire(client_end, message_timeout, idle_timeout), evaluator)
    outcome = {}

    def target():
        try:
            client.run()
            outcome["exit"] = True
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error
        finally:
            client_end.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield server, client, potential, outcome, thread
    finally:
        server.close()
        thread.join(10)
        assert not thread.is_alive(), "the client loop did not end"


def structure(seed=0, natoms=NATOMS):
    """Positions (Bohr) and i-PI's upper-triangular column cell h and its inverse."""
    rng = np.random.default_rng(seed)
    h = np.triu(rng.uniform(0.5, 1.0, (3, 3))) * 20 + np.eye(3) * 10
    return rng.uniform(0, 20, (natoms, 3)), h, np.linalg.inv(h)


@pytest.fixture
def ipi_driver():
    """i-PI's own server-side class for one connected client, closed afterwards."""
    from ipi.interfaces.sockets import Driver

    drivers = []

    def make(sock):
        drivers.append(Driver(sock))
        return drivers[-1]

    yield make
    for driver in drivers:
        driver.close()


def posdata(positions, h, ih):
    return (P.POSDATA + h.tobytes() + ih.tobytes() + np.int32(len(positions)).tobytes()
            + positions.tobytes())


def init(text=b" ", replica=0):
    return P.INIT + np.int32(replica).tobytes() + np.int32(len(text)).tobytes() + text


def recv_exact(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the client closed the connection"
        data += chunk
    return bytes(data)


def reply_size(natoms, extras=0):
    return 12 + 8 + 4 + 24 * natoms + 72 + 4 + extras


def expected_reply(positions_bohr, h):
    """What the fake potential's results become on the wire."""
    positions = positions_bohr / BOHR_PER_ANGSTROM
    cell = h.T / BOHR_PER_ANGSTROM
    virial = np.arange(9.0).reshape(3, 3) + cell.sum() * np.eye(3)
    return (
        np.sum(positions**2) * HARTREE_PER_EV,
        -2.0 * positions * HARTREE_PER_BOHR_PER_EV_PER_ANGSTROM,
        0.5 * (virial + virial.T) * HARTREE_PER_EV,
    )


# ---------------------------------------------------------------------- conventions

def test_unit_factors_are_ipis():
    from ipi.utils.units import unit_to_internal

    assert BOHR_PER_ANGSTROM == unit_to_internal("length", "angstrom", 1.0)
    assert HARTREE_PER_EV == unit_to_internal("energy", "electronvolt", 1.0)
    assert HARTREE_PER_BOHR_PER_EV_PER_ANGSTROM == unit_to_internal("force", "ev/ang", 1.0)


def test_session_with_ipis_own_server_socket(ipi_driver):
    """i-PI's Driver class (the server side of the socket) talks to our client:
    status handshake, INIT, POSDATA + GETFORCE separately and fused, EXIT."""
    from ipi.interfaces.sockets import Status

    positions, h, ih = structure()
    with running_client() as (server, client, potential, outcome, thread):
        driver = ipi_driver(server)
        assert driver.get_status() == Status.Up | Status.NeedsInit
        driver.initialize(3, "")
        assert driver.get_status() == Status.Up | Status.Ready
        assert client.replica == 3

        driver.sendpos(positions.reshape(-1), (h, ih))
        assert driver.get_status() == Status.Up | Status.HasData
        energy, forces, virial, extras = driver.getforce()
        want_energy, want_forces, want_virial = expected_reply(positions, h)
        assert energy == pytest.approx(want_energy, rel=1e-15)
        np.testing.assert_allclose(forces.reshape(-1, 3), want_forces, rtol=1e-15)
        # i-PI's layout is the transpose of mlipdrive's (Σ f_a r_b vs Σ r_a f_b)
        np.testing.assert_allclose(virial, want_virial, rtol=1e-15)
        assert extras == {}
        assert driver.get_status() == Status.Up | Status.Ready

        # what the potential saw: Å, cell as rows, periodic along every vector
        seen_positions, seen_types, seen_cell, seen_pbc = potential.calls[0]
        np.testing.assert_array_equal(seen_positions, positions / BOHR_PER_ANGSTROM)
        np.testing.assert_array_equal(seen_cell, h.T / BOHR_PER_ANGSTROM)
        np.testing.assert_array_equal(seen_types, TYPES)
        assert seen_pbc.tolist() == [True, True, True]

        # i-PI 3.3.1's consolidated exchange: POSDATA and GETFORCE in one write
        positions2, h2, ih2 = structure(seed=1)
        driver.sendall(posdata(positions2, h2, ih2) + P.GETFORCE)
        energy, forces, virial, extras = driver._recv_forces_bulk(NATOMS)
        want_energy, want_forces, want_virial = expected_reply(positions2, h2)
        assert energy == pytest.approx(want_energy, rel=1e-15)
        np.testing.assert_allclose(forces.reshape(-1, 3), want_forces, rtol=1e-15)
        np.testing.assert_allclose(virial, want_virial, rtol=1e-15)

        driver.shutdown()  # sends EXIT
        thread.join(5)
    assert outcome == {"exit": True}
    assert client.timings.evaluations == 2


def test_per_atom_energies_in_extras(ipi_driver):
    positions, h, ih = structure()
    with running_client(per_atom=True) as (server, client, potential, outcome, thread):
        driver = ipi_driver(server)
        driver.get_status()
        driver.initialize(0, "")
        driver.get_status()
        driver.sendall(posdata(positions, h, ih) + P.GETFORCE)
        energy, _, _, extras = driver._recv_forces_bulk(NATOMS)
        energies = np.array(extras["energies"])
        assert energies.shape == (NATOMS,)
        np.testing.assert_allclose(
            energies, ((positions / BOHR_PER_ANGSTROM) ** 2).sum(axis=1) * HARTREE_PER_EV
        )
        assert energies.sum() == pytest.approx(energy, rel=1e-14)
        json.loads(extras["raw"])  # a JSON string on the wire
        driver.shutdown()


def test_batched_mode_with_ipis_own_parser(ipi_driver):
    """i-PI's <batch_size>: one POSDATA with several structures; padding is reused."""
    structures = [structure(seed) for seed in range(2)]
    structures.append(structures[-1])  # i-PI pads with the last structure
    with running_client() as (server, client, potential, outcome, thread):
        driver = ipi_driver(server)
        driver.batch_size = 3
        driver.get_status()
        driver.initialize(0, "")  # announces 'batch_size:3'
        driver.get_status()
        payload = P.POSDATA + np.int32(NATOMS).tobytes()
        for _, h, ih in structures:
            payload += h.tobytes() + ih.tobytes()
        for positions, _, _ in structures:
            payload += positions.tobytes()
        driver.sendall(payload + P.GETFORCE)
        results = driver._recv_forces_bulk_batch(NATOMS, 2)
        for (energy, forces, virial, _), (positions, h, _) in zip(results, structures):
            want_energy, want_forces, want_virial = expected_reply(positions, h)
            assert energy == pytest.approx(want_energy, rel=1e-15)
            np.testing.assert_allclose(forces.reshape(-1, 3), want_forces, rtol=1e-15)
            np.testing.assert_allclose(virial, want_virial, rtol=1e-15)
        assert len(potential.calls) == 2  # the padded copy was not evaluated again
        driver.shutdown()
    assert outcome == {"exit": True}


def session_bytes(steps=2):
    """A valid session as one byte string: what a server sends, in order."""
    data = P.STATUS + init() + P.STATUS
    for step in range(steps):
        data += posdata(*structure(step)) + P.GETFORCE + P.STATUS
    return data + P.EXIT


def replies_for(chunks, expected_size):
    with running_client() as (server, client, potential, outcome, thread):
        for chunk in chunks:
            server.sendall(chunk)
            time.sleep(0)
        reply = recv_exact(server, expected_size)
        thread.join(5)
    assert outcome == {"exit": True}, outcome
    return reply


def test_partial_reads_of_every_field_give_the_same_replies():
    data = session_bytes()
    size = 12 * 2 + 2 * (reply_size(NATOMS) + 12)
    whole = replies_for([data], size)
    byte_by_byte = replies_for([data[i:i + 1] for i in range(len(data))], size)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(len(data), 40, replace=False))
    random_pieces = replies_for(np.split(np.frombuffer(data, np.uint8), cuts), size)
    assert byte_by_byte == whole
    assert bytes(random_pieces) == whole
    assert whole.startswith(P.NEEDINIT + P.READY + P.FORCEREADY)


def test_status_answers_follow_the_state():
    positions, h, ih = structure()
    with running_client() as (server, client, potential, outcome, thread):
        server.sendall(P.STATUS)
        assert recv_exact(server, 12) == P.NEEDINIT
        server.sendall(init(b"abc") + P.STATUS)
        assert recv_exact(server, 12) == P.READY
        server.sendall(posdata(positions, h, ih) + P.STATUS)
        assert recv_exact(server, 12) == P.HAVEDATA
        server.sendall(P.GETFORCE)
        assert recv_exact(server, reply_size(NATOMS))[:12] == P.FORCEREADY
        server.sendall(P.STATUS)
        assert recv_exact(server, 12) == P.READY
        server.sendall(P.EXIT)


# ---------------------------------------------------------------------- periodicity

def test_periodicity_options():
    assert parse_pbc("auto") is None
    assert parse_pbc("none").tolist() == [False] * 3
    assert parse_pbc("all").tolist() == [True] * 3
    assert parse_pbc("TTF").tolist() == [True, True, False]
    with pytest.raises(ValueError, match="expected 'auto', 'none', 'all'"):
        parse_pbc("sometimes")


@pytest.mark.parametrize("pbc, expected", [(None, [True, True, False]),
                                           (np.zeros(3, bool), [False] * 3)])
def test_periodicity_reaches_the_potential(pbc, expected):
    positions, h, ih = structure()
    h[:, 2] = 0.0  # no third lattice vector: auto is not periodic along it
    with running_client(pbc=pbc) as (server, client, potential, outcome, thread):
        server.sendall(init() + posdata(positions, h, ih) + P.GETFORCE)
        recv_exact(server, reply_size(NATOMS))
        server.sendall(P.EXIT)
    assert potential.calls[0][3].tolist() == expected


# ---------------------------------------------------------------------- hostile peers

def run_stream(data, natoms=NATOMS, close=True, message_timeout=5.0, potential=None):
    """Feed ``data`` to a client (then close); return the client's outcome."""
    with running_client(potential, natoms=natoms, message_timeout=message_timeout) as (
        server, client, _, outcome, thread,
    ):
        with contextlib.suppress(OSError):
            server.sendall(data)
        if close:
            server.shutdown(socket.SHUT_WR)
        thread.join(message_timeout * 3 + 5)
    return outcome


def test_natoms_must_match_the_structure():
    positions, h, ih = structure(natoms=7)
    outcome = run_stream(init() + posdata(positions, h, ih))
    error = outcome["error"]
    assert isinstance(error, ProtocolError)
    assert "7 atoms" in str(error) and f"{NATOMS} atoms" in str(error)


def test_natoms_cannot_change_mid_run():
    first = posdata(*structure()) + P.GETFORCE
    second = posdata(*structure(natoms=NATOMS + 1))
    outcome = run_stream(init() + first + second)
    assert isinstance(outcome["error"], ProtocolError)
    message = str(outcome["error"])
    assert f"i-PI sent positions of {NATOMS + 1} atoms, but this client serves {NATOMS}" in message
    assert "--active with the same indices" in message


def test_absurd_sizes_are_refused_before_allocating():
    tracemalloc.start()
    try:
        huge_natoms = P.POSDATA + np.zeros(18).tobytes() + np.int32(2**31 - 1).tobytes()
        outcome = run_stream(init() + huge_natoms)
        assert isinstance(outcome["error"], ProtocolError)
        huge_init = P.INIT + np.int32(0).tobytes() + np.int32(2**31 - 1).tobytes()
        outcome = run_stream(huge_init)
        assert "INIT announces a string of 2147483647 bytes" in str(outcome["error"])
        negative = P.INIT + np.int32(0).tobytes() + np.int32(-5).tobytes()
        assert isinstance(run_stream(negative)["error"], ProtocolError)
        batch = init(b"batch_size:100000000")
        assert "batches of 100000000" in str(run_stream(batch)["error"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20


def test_unknown_header_is_named():
    outcome = run_stream(b"HELLO WORLD!")
    assert isinstance(outcome["error"], ProtocolError)
    assert "'HELLO WORLD!'" in str(outcome["error"])
    outcome = run_stream(bytes(range(250, 256)) * 2)
    assert "unknown message header" in str(outcome["error"])


def test_getforce_before_posdata_is_an_error():
    outcome = run_stream(init() + P.GETFORCE)
    assert isinstance(outcome["error"], ProtocolError)
    assert "before any POSDATA" in str(outcome["error"])


def test_server_closing_between_messages():
    outcome = run_stream(P.STATUS + init())
    assert isinstance(outcome["error"], ConnectionLost)
    assert "without sending EXIT" in str(outcome["error"])


def test_server_closing_in_the_middle_of_a_message():
    data = init() + posdata(*structure())
    outcome = run_stream(data[:-17])
    assert isinstance(outcome["error"], ConnectionLost)
    assert "in the middle of POSDATA positions" in str(outcome["error"])


def test_truncated_message_on_an_open_connection_times_out():
    start = time.monotonic()
    data = init() + posdata(*structure())
    outcome = run_stream(data[:-17], close=False, message_timeout=0.3)
    assert isinstance(outcome["error"], ProtocolError)
    assert "stopped sending in the middle of POSDATA" in str(outcome["error"])
    assert time.monotonic() - start < 3
    outcome = run_stream(P.STATUS[:5], close=False, message_timeout=0.3)
    assert "in the middle of a message header" in str(outcome["error"])


def test_idle_timeout_when_asked_for():
    start = time.monotonic()
    with running_client(idle_timeout=0.3) as (server, client, potential, outcome, thread):
        thread.join(5)
    assert isinstance(outcome["error"], ConnectionLost)
    assert "no message from i-PI for 0.3 s (idle timeout)" in str(outcome["error"])
    assert time.monotonic() - start < 3


def test_model_failure_is_an_evaluation_error():
    outcome = run_stream(init() + posdata(*structure()), potential=FakePotential(fail=True))
    assert isinstance(outcome["error"], EvaluationError)
    assert "non-finite energy" in str(outcome["error"])


def test_fuzzed_streams_end_with_a_clear_error():
    """Random bytes, truncated and mutated sessions: always an error of ours (or a
    clean EXIT), quickly, and no allocation beyond the fixed buffers."""
    rng = np.random.default_rng(12345)
    valid = session_bytes(steps=1)
    allowed = (ProtocolError, ConnectionLost, EvaluationError)
    tracemalloc.start()
    try:
        start = time.monotonic()
        for case in range(240):
            kind = case % 3
            if kind == 0:
                data = rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8).tobytes()
            elif kind == 1:
                data = valid[: rng.integers(0, len(valid))]
            else:
                mutated = bytearray(valid)
                for position in rng.integers(0, len(valid), rng.integers(1, 4)):
                    mutated[position] = rng.integers(0, 256)
                data = bytes(mutated)
            outcome = run_stream(data)
            if "error" in outcome:
                assert isinstance(outcome["error"], allowed), (data, outcome)
                assert str(outcome["error"])
            else:
                assert outcome == {"exit": True}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 60
    assert peak < 5 * 2**20


# ---------------------------------------------------------------------- connecting

def test_connect_waits_for_a_late_unix_server():
    name = unique_address("c")
    path = "/tmp/ipi_" + name
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def start_late():
        time.sleep(0.5)
        listener.bind(path)
        listener.listen(1)

    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        sock = connect(unix=name, timeout=10)
        sock.close()
    finally:
        thread.join()
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            import os

            os.unlink(path)


def test_connect_inet_sets_tcp_nodelay():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("localhost", 0))
    listener.listen(1)
    try:
        sock = connect(address="localhost", port=listener.getsockname()[1], timeout=5)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        sock.close()
    finally:
        listener.close()


def test_connect_gives_up_with_a_hint():
    start = time.monotonic()
    with pytest.raises(ConnectError, match="Start 'i-pi input.xml' first"):
        connect(unix=unique_address("n"), timeout=0.5)
    with pytest.raises(ConnectError, match="localhost:"):
        connect(port=free_port(), timeout=0.5)
    assert time.monotonic() - start < 5
    with pytest.raises(ConnectError, match="longer than the 107"):
        connect(unix="x" * 120, timeout=0.1)


@contextlib.contextmanager
def fake_server(script):
    """A listening INET socket that runs ``script(connection)`` for one client."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("localhost", 0))
    listener.listen(1)

    def target():
        connection, _ = listener.accept()
        try:
            script(connection)
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(10)
        listener.close()


def one_step_then(ending):
    def script(connection):
        connection.sendall(P.STATUS + init() + P.STATUS + posdata(*structure()) + P.GETFORCE)
        try:
            recv_exact(connection, 24 + reply_size(NATOMS))
        except (AssertionError, ConnectionError):
            return  # the client left (a model failure)
        if ending:
            connection.sendall(ending)
    return script


@pytest.mark.parametrize("ending, code", [
    (P.EXIT, EXIT_OK),
    (b"", EXIT_CONNECTION_LOST),
    (b"GARBAGE!!!!!", EXIT_PROTOCOL),
])
def test_serve_exit_codes(ending, code, capsys):
    potential = FakePotential()
    with fake_server(one_step_then(ending)) as port:
        assert serve(potential.compute, TYPES, port=port, connect_timeout=5) == code
    assert len(potential.calls) == 1
    if code != EXIT_OK:
        assert "mlipdrive ipi: error:" in capsys.readouterr().err


def test_serve_reports_model_failures_and_missing_servers(capsys):
    with fake_server(one_step_then(b"")) as port:
        code = serve(FakePotential(fail=True).compute, TYPES, port=port, connect_timeout=5)
    assert code == EXIT_EVALUATION
    assert "the model failed on the structure i-PI sent" in capsys.readouterr().err
    assert serve(FakePotential().compute, TYPES, unix=unique_address("m"),
                 connect_timeout=0.2) == EXIT_CONNECT
    assert "no i-PI server at UNIX socket" in capsys.readouterr().err


# ---------------------------------------------------------------------- command lines

def test_ipi_driver_entry_rejects_bad_options(capsys):
    from mlipdrive.ipi.command import ipi_driver_main

    assert ipi_driver_main(["-m", "harmonic", "-o", "template=a.xyz,model=m.pt"]) == 2
    assert "use -m metatomic" in capsys.readouterr().err
    assert ipi_driver_main(["-o", "template=a.xyz,model=m.pt,ensemble_size=4"]) == 2
    assert "unknown -o option(s) ['ensemble_size']" in capsys.readouterr().err
    options = "template=a.xyz,model=m.pt,force_virial_ensemble=True"
    assert ipi_driver_main(["-o", options]) == 2
    assert "force_virial_ensemble=True needs energy_ensemble=True" in capsys.readouterr().err
    assert ipi_driver_main(["-o", "template=a.xyz,model=m.pt,device=cuda:0;cuda:1"]) == 2
    assert "runs one device per process" in capsys.readouterr().err
    assert ipi_driver_main(["-o", "template=a.xyz"]) == 2
    assert "-o needs model=FILE" in capsys.readouterr().err


def test_cli_needs_a_socket(capsys):
    from mlipdrive.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["ipi", "--model", "m.pt", "--structure", "s.xyz"])
    assert exit_info.value.code == 2
    assert "one of the arguments --unix --port --ffmpi is required" in capsys.readouterr().err
