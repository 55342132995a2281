"""i-PI 3.3's other transports, ``<ffsocket mode='shm'>`` and ``<ffmpi>``, with the
real ``i-pi`` and ``mpirun``: our clients against i-PI's own ``i-pi-py_driver -m
metatomic`` on the same transport and input (path integrals of 8 beads, batched
and not), and their faults: nothing left in /dev/shm whoever stops first, a
failed <ffmpi> client ends the whole job with its cause.

LJ, 32 atoms, a few steps: the default set covers each transport, each client
command, batching and the MPI-decomposed client once; the rest is ``matrix``.
"""

import os
import pathlib
import signal
import time

import numpy as np
import pytest

from ipi_testing import (
    Processes,
    Simulation,
    client_command,
    ffmpi_command,
    ipi_command,
    run_simulation,
    unique_address,
    wait_for_unix_socket,
    write_input,
)
from structures import argon

SHM = pathlib.Path("/dev/shm")
# i-PI's trajectories of the same input must agree to float64 round-off
POSITIONS_ATOL = 1e-9  # Bohr


def pimd(batch_size=1, steps=4, nbeads=8) -> Simulation:
    return Simulation(steps=steps, ensemble="nvt", nbeads=nbeads, batch_size=batch_size,
                      temperature_k=80.0, timestep_fs=2.0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, lj_model):
    """i-PI with i-pi-py_driver on a transport, once per (transport, batch size)."""
    cache = {}

    def get(transport, batch_size):
        key = (transport, batch_size)
        if key not in cache:
            directory = tmp_path_factory.mktemp(f"reference-{transport}-{batch_size}")
            cache[key] = run_simulation(directory, argon(repeat=2), pimd(batch_size),
                                        lj_model, ["reference"], transport=transport)
        return cache[key]

    return get


def assert_same_run(ours, theirs):
    """Every bead's trajectory and the potential, to float64 round-off."""
    assert len(ours.positions) == len(theirs.positions) == 8
    for bead, (mine, other) in enumerate(zip(ours.positions, theirs.positions)):
        assert mine.shape == other.shape and len(mine) > 1, bead
        error = np.abs(mine - other).max()
        assert error < POSITIONS_ATOL, f"bead {bead}: positions differ by {error:.3g} Bohr"
    potential, other = ours.property("potential"), theirs.property("potential")
    np.testing.assert_allclose(potential, other, rtol=1e-12, atol=0)
    assert np.ptp(potential) > 0  # the run moved


CASES = [
    # transport, batch size, client kind, ranks, extra options
    pytest.param("shm", 1, "mlipdrive", 1, (), id="shm-mlipdrive"),
    pytest.param("shm", 8, "ipi-driver", 1, (), id="shm-batched-ipi-driver"),
    pytest.param("shm", 4, "mpi", 2, (), id="shm-batched-mpirun-decomposed"),
    pytest.param("ffmpi", 1, "ipi-driver", 1, (), id="ffmpi-ipi-driver"),
    pytest.param("ffmpi", 4, "mlipdrive", 2, (), id="ffmpi-batched-2-clients"),
    pytest.param("ffmpi", 1, "mlipdrive", 2, ("--group-size", "2"),
                 id="ffmpi-group-decomposed"),
    pytest.param("shm", 8, "mlipdrive", 1, (), id="shm-batched-mlipdrive",
                 marks=pytest.mark.matrix),
    pytest.param("shm", 1, "ipi-driver", 1, (), id="shm-ipi-driver",
                 marks=pytest.mark.matrix),
    pytest.param("ffmpi", 8, "ipi-driver", 1, (), id="ffmpi-batched-ipi-driver",
                 marks=pytest.mark.matrix),
    pytest.param("ffmpi", 1, "ipi-driver", 4, ("-g", "2"), id="ffmpi-2-groups-of-2",
                 marks=pytest.mark.matrix),
]


@pytest.mark.parametrize("transport, batch_size, kind, ranks, extra", CASES)
def test_transport_matches_ipi_driver(tmp_path, lj_model, reference, transport,
                                      batch_size, kind, ranks, extra):
    before = _ipi_segments()
    if transport == "ffmpi":
        ours = run_simulation(tmp_path, argon(repeat=2), pimd(batch_size), lj_model, [kind],
                              transport="ffmpi", ranks=ranks, extra=extra)
    else:
        ours = run_simulation(tmp_path, argon(repeat=2), pimd(batch_size), lj_model, [kind],
                              transport="shm", extra=extra)
    assert_same_run(ours, reference(transport, batch_size))
    if transport == "shm":
        assert _ipi_segments() <= before


def _ipi_segments() -> set:
    return {path.name for path in SHM.glob("ipi_shm_*")}


def _server_segments(pid: int) -> list:
    return sorted(path.name for path in SHM.glob(f"ipi_shm_{pid}_*"))


def _start_shm_run(processes, directory, lj_model, steps=100000):
    """i-PI (mode='shm', 32 atoms, a long run) and our client, once it computes."""
    import ase.io

    ase.io.write(directory / "init.xyz", argon(repeat=2), format="extxyz")
    unix = unique_address("shm")
    write_input(directory, Simulation(steps=steps), unix=unix, transport="shm")
    server = processes.start(ipi_command(), "ipi")
    wait_for_unix_socket(unix, server)
    client = processes.start(client_command("mlipdrive", lj_model, unix=unix,
                                            transport="shm"), "client")
    deadline = time.monotonic() + 60
    while not _server_segments(server.pid):
        assert time.monotonic() < deadline, processes.log(client)
        time.sleep(0.1)
    time.sleep(1.0)  # a few steps through shared memory
    return server, client


@pytest.mark.parametrize("stop", ["server-killed", "client-sigterm", "client-sigint"])
def test_shm_leaves_nothing_in_dev_shm(tmp_path, lj_model, stop):
    with Processes(tmp_path) as processes:
        server, client = _start_shm_run(processes, tmp_path, lj_model)
        if stop == "server-killed":
            processes.kill(server, signal.SIGKILL)
            expected = 4  # EXIT_CONNECTION_LOST
        else:
            os.kill(client.pid, signal.SIGTERM if stop == "client-sigterm" else signal.SIGINT)
            expected = 143 if stop == "client-sigterm" else 130
        code = processes.wait(client, 30)
        log = processes.log(client)
        assert code == expected, log
        assert _server_segments(server.pid) == [], log
    if stop == "server-killed":
        assert "i-PI closed the connection" in log


def test_shm_after_exit_leaves_nothing(tmp_path, lj_model):
    with Processes(tmp_path) as processes:
        server, client = _start_shm_run(processes, tmp_path, lj_model, steps=20)
        assert processes.wait(client, 60) == 0, processes.log(client)
        assert processes.wait(server, 60) == 0, processes.log(server)
        assert _server_segments(server.pid) == []


def test_shm_client_on_a_unix_server_says_so(tmp_path, lj_model):
    """The client's --shm and the server's mode disagree: a clear error, no hang."""
    import ase.io

    ase.io.write(tmp_path / "init.xyz", argon(repeat=2), format="extxyz")
    unix = unique_address("mix")
    write_input(tmp_path, Simulation(steps=5), unix=unix)
    with Processes(tmp_path) as processes:
        server = processes.start(ipi_command(), "ipi")
        wait_for_unix_socket(unix, server)
        client = processes.start(client_command("mlipdrive", lj_model, unix=unix,
                                                transport="shm"), "client")
        code = processes.wait(client, 60)
        log = processes.log(client)
    assert code == 5, log  # EXIT_PROTOCOL
    assert "--shm" in log


# a client that cannot serve i-PI -> (its arguments after the ffmpi client's, the cause)
FFMPI_FAILURES = {
    "wrong structure": (["--structure", "other.xyz"], "i-PI sent positions of 32 atoms"),
    "no model file": (["--model", "missing.pt"], "model file 'missing.pt' does not exist"),
    "wrong option": (["--pbc", "xyz"], "for the periodicity, got 'xyz'"),
    "command line": (["--group-size", "0"], "--group-size: expected an integer >= 1, got 0"),
}


@pytest.mark.parametrize("arguments, cause", FFMPI_FAILURES.values(), ids=list(FFMPI_FAILURES))
def test_ffmpi_failure_ends_the_job(tmp_path, lj_model, arguments, cause):
    """A client that cannot serve i-PI stops the whole MPMD job, also under
    ``mpirun -disable-auto-cleanup`` where a client that only exited would leave
    i-PI waiting (a hang fails ``wait``)."""
    import ase.io

    ase.io.write(tmp_path / "init.xyz", argon(repeat=2), format="extxyz")
    ase.io.write(tmp_path / "other.xyz", argon(repeat=1), format="extxyz")
    write_input(tmp_path, pimd(), transport="ffmpi")
    client = [*client_command("mlipdrive", lj_model, transport="ffmpi"), *arguments]
    with Processes(tmp_path) as processes:
        job = processes.start(ffmpi_command(client, 2), "job")
        code = processes.wait(job, 120)
        log = processes.log(job)
    assert code != 0, log
    # the cause and what follows, both relayed by mpirun before MPI_Abort
    # (OUTPUT_RELAY_GRACE_S)
    assert cause in log, log
    assert "stopping the whole MPI job" in log, log


def test_transport_usage_errors(tmp_path, lj_model, capsys):
    """--shm needs the UNIX socket; --ffmpi needs i-PI in the same MPI job."""
    import ase.io

    from mlipdrive.ipi import EXIT_USAGE, serve

    assert serve(lambda *a, **k: None, [18], port=1234, shm=True) == EXIT_USAGE
    assert "mode='shm' runs over a UNIX socket" in capsys.readouterr().err
    ase.io.write(tmp_path / "init.xyz", argon(repeat=1), format="extxyz")
    with Processes(tmp_path) as processes:
        alone = processes.start(client_command("mlipdrive", lj_model, transport="ffmpi"),
                                "alone")
        assert processes.wait(alone, 120) == EXIT_USAGE
        assert "<ffmpi> needs i-PI and the clients in one MPI job" in processes.log(alone)


SHM_CLOSE_WITH_A_VIEW = """
import os, socket, sys
import numpy as np
from ipi_client._protocol import Wire
from ipi_client._shm import SEGMENTS, SharedFrames, _segment_shapes

names = [f"mlipdrive_test_{os.getpid()}_{kind}" for kind in SEGMENTS]
for kind, name in zip(SEGMENTS, names):
    with open(os.path.join("/dev/shm", name), "wb") as segment:
        segment.truncate(8 * int(np.prod(_segment_shapes(1, 4)[kind])))
ours, theirs = socket.socketpair()
message = [np.array([4], np.int32).tobytes()]
for name in names:
    message += [np.array([len(name)], np.int32).tobytes(), name.encode()]
theirs.sendall(b"".join(message))
frames = SharedFrames(4)
frames.read_posdata(Wire(ours, 5.0, 0.0))
forces = frames.forces  # a view that outlives close(), as in a traceback
frames.close()
forces[:] = 1.0  # would write into an unmapped page if close() unmapped
assert forces.sum() == 12.0
assert not any(os.path.exists(os.path.join("/dev/shm", name)) for name in names)
"""


def test_shm_close_unlinks_and_leaves_views_valid():
    """close() unlinks i-PI's segments at once, but a numpy view of a segment
    stays usable (numpy does not pin an mmap: unmapping under it would crash)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SHM_CLOSE_WITH_A_VIEW], capture_output=True,
                          text=True, timeout=60, cwd=pathlib.Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
