"""``mpirun -np 2 mlipdrive ipi``: rank 0 talks to i-PI, every rank evaluates its
spatial domain; the trajectory equals the serial client's, and a dying server
ends every rank.
"""

import signal
import time

import numpy as np
import pytest

from mlipdrive.ipi import EXIT_CONNECTION_LOST
from mlipdrive.ipi.testing import (
    Processes,
    Simulation,
    client_command,
    ipi_command,
    remove_unix_socket,
    run_simulation,
    unique_address,
    write_input,
)
from mlipdrive.testing import argon, copper_aluminium

pytest.importorskip("mpi4py")

# the decomposition sums energies and forces in another order than the serial run
POSITIONS_ATOL = 1e-10  # Bohr

SYSTEMS = {
    "lj": (lambda: argon(repeat=2), Simulation(steps=10, temperature_k=80.0)),
    "mace": (lambda: copper_aluminium(repeat=2),
             Simulation(steps=5, temperature_k=300.0, timestep_fs=1.0)),
}


@pytest.mark.parametrize("name", ["lj", "mace"])
def test_two_ranks_give_the_serial_trajectory(name, request, tmp_path):
    model = request.getfixturevalue(f"{name}_model")
    structure, simulation = SYSTEMS[name]
    serial = run_simulation(tmp_path / "serial", structure(), simulation, model,
                            ["mlipdrive"])
    parallel = run_simulation(tmp_path / "mpi", structure(), simulation, model, ["mpi"],
                              extra=["-v"])
    assert "domain decomposition over 2 MPI ranks" in parallel.client_logs[0]
    error = np.abs(parallel.positions[0] - serial.positions[0]).max()
    assert error < POSITIONS_ATOL, f"positions differ by {error:.3g} Bohr"
    np.testing.assert_allclose(parallel.properties, serial.properties, rtol=1e-9,
                               atol=1e-14)


def test_server_killed_ends_every_rank(lj_model, tmp_path):
    import ase.io

    ase.io.write(tmp_path / "init.xyz", argon(repeat=2), format="extxyz")
    name = unique_address("p")
    write_input(tmp_path, Simulation(steps=1_000_000), unix=name)
    try:
        with Processes(tmp_path) as processes:
            server = processes.start(ipi_command(), "ipi")
            client = processes.start(
                client_command("mpi", lj_model, unix=name, extra=["-v"]), "client")
            deadline = time.monotonic() + 120
            while "INIT for replica" not in processes.log(client):
                assert client.poll() is None, processes.log(client)
                assert time.monotonic() < deadline, processes.log(client)
                time.sleep(0.05)
            time.sleep(0.5)
            killed = time.monotonic()
            processes.kill(server, signal.SIGKILL)
            code = processes.wait(client, 60)
            elapsed = time.monotonic() - killed
            log = processes.log(client)
    finally:
        remove_unix_socket(name)
    assert code == EXIT_CONNECTION_LOST, log
    assert elapsed < 10, f"mpirun took {elapsed:.1f} s to end"
    assert "i-PI closed the connection without sending EXIT" in log
