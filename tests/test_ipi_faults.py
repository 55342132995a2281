"""Faults with the real ``i-pi`` server: the server dies, the client dies and a
fresh one takes over, the server starts late or never, the structures disagree.
Malformed and truncated messages are fuzzed in test_ipi_protocol.py.
"""

import signal
import time

import ase.io
import numpy as np
import pytest

from mlipdrive.ipi import (
    EXIT_CONNECT,
    EXIT_CONNECTION_LOST,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_TERMINATED,
)
from ipi_testing import (
    Processes,
    Simulation,
    client_command,
    ipi_command,
    read_binary_trajectory,
    read_properties,
    remove_unix_socket,
    run_simulation,
    unique_address,
    wait_for_unix_socket,
    write_input,
)
from structures import argon


@pytest.fixture
def setup(tmp_path):
    """A run directory with the LJ argon structure and a fresh socket name."""
    ase.io.write(tmp_path / "init.xyz", argon(repeat=2), format="extxyz")
    name = unique_address("f")
    yield tmp_path, name
    remove_unix_socket(name)  # a killed i-PI leaves its socket file behind


def wait_for_log(processes, child, text, timeout=90.0):
    deadline = time.monotonic() + timeout
    while text not in processes.log(child):
        if child.poll() is not None:
            raise AssertionError(f"exited with {child.returncode} before '{text}':\n"
                                 f"{processes.log(child)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no '{text}' after {timeout} s:\n{processes.log(child)}")
        time.sleep(0.05)


def test_server_killed_mid_run(setup, lj_model):
    directory, name = setup
    write_input(directory, Simulation(steps=1_000_000), unix=name)
    with Processes(directory) as processes:
        server = processes.start(ipi_command(), "ipi")
        client = processes.start(
            client_command("mlipdrive", lj_model, unix=name, extra=["-v"]), "client")
        wait_for_log(processes, client, "INIT for replica")
        time.sleep(0.5)  # a few steps
        killed = time.monotonic()
        processes.kill(server, signal.SIGKILL)
        code = processes.wait(client, 30)
        elapsed = time.monotonic() - killed
        log = processes.log(client)
    assert code == EXIT_CONNECTION_LOST, log
    assert elapsed < 5, f"the client took {elapsed:.1f} s to notice"
    assert "i-PI closed the connection without sending EXIT" in log


def test_killed_client_is_replaced_and_ipi_continues(setup, lj_model, tmp_path_factory):
    """``kill`` (SIGTERM) the client mid-run; i-PI re-sends the lost request to a
    fresh client and the trajectory is the one of an uninterrupted run.

    (SIGTERM, not SIGKILL: a client killed while i-PI's next message sits unread
    resets the connection, and i-PI 3.3.1's polling thread dies on ECONNRESET;
    on SIGTERM the client closes its side first and drains the socket.)
    """
    directory, name = setup
    # long enough that the client is still busy when it is killed (a step of this
    # LJ run costs ~13 ms: 60 steps were over before the kill once the model got faster)
    steps = 300
    write_input(directory, Simulation(steps=steps), unix=name)
    with Processes(directory) as processes:
        server = processes.start(ipi_command(), "ipi")
        first = processes.start(
            client_command("mlipdrive", lj_model, unix=name, extra=["-v"]), "first")
        wait_for_log(processes, first, "INIT for replica")
        time.sleep(0.3)
        assert server.poll() is None, "i-PI finished before the client was killed"
        assert "i-PI sent EXIT" not in processes.log(first), "the run ended before the kill"
        first.send_signal(signal.SIGTERM)
        assert processes.wait(first, 30) == EXIT_TERMINATED, processes.log(first)
        assert "terminated (SIGTERM); closed the connection" in processes.log(first)
        second = processes.start(client_command("mlipdrive", lj_model, unix=name),
                                  "second")
        assert processes.wait(second, 120) == EXIT_OK, processes.log(second)
        assert processes.wait(server, 60) == 0, processes.log(server)
    positions, _ = read_binary_trajectory(directory / "sim.pos_0.bin")
    steps_written = read_properties(directory / "sim.out")[:, 0]
    np.testing.assert_array_equal(steps_written, np.arange(steps + 1))

    uninterrupted = run_simulation(tmp_path_factory.mktemp("uninterrupted"),
                                   argon(repeat=2), Simulation(steps=steps), lj_model,
                                   ["mlipdrive"])
    assert np.abs(positions - uninterrupted.positions[0]).max() < 1e-10


def test_client_waits_for_a_late_server(setup, lj_model):
    directory, name = setup
    write_input(directory, Simulation(steps=3), unix=name)
    with Processes(directory) as processes:
        client = processes.start(
            client_command("mlipdrive", lj_model, unix=name, extra=["-v"]), "client")
        wait_for_log(processes, client, "waiting for i-PI")
        time.sleep(1.0)
        assert client.poll() is None
        server = processes.start(ipi_command(), "ipi")
        assert processes.wait(client, 120) == EXIT_OK, processes.log(client)
        assert processes.wait(server, 60) == 0
        assert "connected to i-PI" in processes.log(client)


def cli(*arguments):
    from mlipdrive.cli import main

    return main(["ipi", *map(str, arguments)])


def test_no_server_is_a_clear_error(setup, lj_model, capsys):
    directory, name = setup
    start = time.monotonic()
    code = cli("--model", lj_model, "--structure", directory / "init.xyz", "--unix", name,
               "--connect-timeout", "0.5")
    assert code == EXIT_CONNECT
    assert time.monotonic() - start < 30
    error = capsys.readouterr().err
    assert f"no i-PI server at UNIX socket /tmp/ipi_{name} after waiting 0.5 s" in error


def test_structure_with_other_atoms_is_refused(setup, lj_model, capsys):
    """i-PI has 32 atoms, the client was given 108: a protocol error, named."""
    directory, name = setup
    ase.io.write(directory / "other.xyz", argon(repeat=3), format="extxyz")
    write_input(directory, Simulation(steps=3), unix=name)
    with Processes(directory) as processes:
        server = processes.start(ipi_command(), "ipi")
        wait_for_unix_socket(name, server)
        code = cli("--model", lj_model, "--structure", directory / "other.xyz",
                   "--unix", name, "--connect-timeout", "30")
    assert code == EXIT_PROTOCOL
    error = capsys.readouterr().err
    assert "i-PI sent positions of 32 atoms, but this client serves 108 atoms" in error


def test_missing_structure_and_wrong_elements(setup, lj_model, capsys):
    directory, name = setup
    code = cli("--model", lj_model, "--structure", directory / "missing.xyz",
               "--unix", name)
    assert code == 2
    assert "missing.xyz': no such file" in capsys.readouterr().err
    water = ase.Atoms("H2O", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    ase.io.write(directory / "water.xyz", water)
    code = cli("--model", lj_model, "--structure", directory / "water.xyz", "--unix", name)
    assert code == 2
    assert "atomic types [1, 8] are not supported by this model" in capsys.readouterr().err

