"""``mpirun -np 2 mlipdrive ipi``: rank 0 talks to i-PI, every rank evaluates its
spatial domain; the trajectory equals that of i-PI's own metatomic driver
(``i-pi-py_driver -m metatomic``) for the LJ model and every shipped model family
(within the family's tolerances), and a dying server ends every rank.

``make test`` runs LJ and MACE; PET and SOAP-BPNN are marked ``matrix`` (their
MPI path is checked by test_decomposition_mpi.py, their i-PI path by
test_ipi_server.py).
"""

import signal
import time

import numpy as np
import pytest
from ipi_families import POSITIONS_ATOL, compare_runs, family_clients, report

from mlipdrive.ipi import EXIT_CONNECTION_LOST
from ipi_testing import (
    Processes,
    Simulation,
    client_command,
    ipi_command,
    remove_unix_socket,
    run_simulation,
    unique_address,
    write_input,
)
from structures import argon, copper_aluminium

pytest.importorskip("mpi4py")

FAMILIES = ["mace", "pet", "soap_bpnn"]


def test_two_ranks_give_the_reference_trajectory_lj(lj_model, tmp_path):
    structure, simulation = argon(repeat=2), Simulation(steps=10, temperature_k=80.0)
    reference = run_simulation(tmp_path / "reference", structure, simulation, lj_model,
                               ["reference"])
    parallel = run_simulation(tmp_path / "mpi", structure, simulation, lj_model, ["mpi"],
                              extra=["-v"])
    assert "domain decomposition over 2 MPI ranks" in parallel.client_logs[0]
    # the decomposition sums energies and forces in another order
    error = np.abs(parallel.positions[0] - reference.positions[0]).max()
    assert error < POSITIONS_ATOL, f"positions differ by {error:.3g} Bohr"
    np.testing.assert_allclose(parallel.properties, reference.properties, rtol=1e-9,
                               atol=1e-14)


@pytest.mark.parametrize(
    "model_family",
    [pytest.param(f, marks=() if f == "mace" else (pytest.mark.matrix,)) for f in FAMILIES],
    indirect=True,
)
def test_two_ranks_give_the_reference_trajectory(model_family, tmp_path):
    structure = copper_aluminium(repeat=2)
    # the forces trajectory: the first step's forces are compared
    simulation = Simulation(steps=5, temperature_k=300.0, timestep_fs=1.0, forces=True)
    with family_clients(model_family):
        reference = run_simulation(tmp_path / "reference", structure, simulation,
                                   model_family.path, ["reference"])
        parallel = run_simulation(tmp_path / "mpi", structure, simulation,
                                  model_family.path, ["mpi"], extra=["-v"])
    assert "domain decomposition over 2 MPI ranks" in parallel.client_logs[0]
    found = compare_runs(parallel, reference, model_family, structure, simulation)
    report(f"{model_family.name} mpi np=2", found)


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
