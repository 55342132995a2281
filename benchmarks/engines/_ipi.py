"""i-PI rows: a real ``i-pi`` server running NVE (ring polymer of ``row.beads``
beads), and one client over one of i-PI 3.3's transports: a UNIX socket
(``unix``), the socket with positions and forces in shared memory (``shm``), or
MPI in one MPMD job with i-PI (``ffmpi``: ``mpirun -disable-auto-cleanup -n 1 i-pi
input.xml : -n 1 CLIENT``, the flag as examples/ipi/README.md explains).

i-PI times its own steps: with ``verbosity='high'`` it prints "Average timings at
MD step N. t/step: T" after every step, T being the wall time of that step as the
server sees it (the client's evaluations of every bead, the transfers and i-PI's
integrator and output). The harness drops the warm-up steps and splits the rest
into the repeats. Energies come from i-PI's property file (conserved quantity
and potential energy every step, in eV and ps).

i-PI draws the initial velocities itself (thermal, at the row's temperature,
seeded): the same for both clients, not the ones of the other engines.
"""

import os
import pathlib
import re
import time
from typing import List

from ..matrix import Row
from ..measure import TreeMemory, drift, kill_group, start_process, tail

_STEP = re.compile(r"Average timings at MD step\s+(\d+)\. t/step:\s+(\S+)")

#: i-PI 3.3's transports a row can use
TRANSPORTS = ("unix", "shm", "ffmpi")


def forcefield_xml(transport: str, address: str) -> str:
    """The forcefield 'driver' of ``transport``."""
    if transport == "ffmpi":
        return "<ffmpi name='driver' pbc='false'></ffmpi>"
    return (f"<ffsocket name='driver' mode='{transport}' pbc='false'>"
            f"<address> {address} </address></ffsocket>")


def input_xml(row: Row, address: str, total_steps: int, structure: str,
              transport: str = "unix") -> str:
    """An i-PI NVE input with per-step timings and properties."""
    return f"""<simulation verbosity='high' safe_stride='100000000'>
  <output prefix='sim'>
    <properties stride='{row.thermo_every}' filename='out' flush='100'>
      [ step, time{{picosecond}}, conserved{{electronvolt}}, potential{{electronvolt}} ]
    </properties>
  </output>
  <total_steps> {total_steps} </total_steps>
  <prng><seed> {row.seed} </seed></prng>
  {forcefield_xml(transport, address)}
  <system>
    <initialize nbeads='{row.beads}'>
      <file mode='ase'> {structure} </file>
      <velocities mode='thermal' units='kelvin'> {row.temperature_k} </velocities>
    </initialize>
    <forces><force forcefield='driver'/></forces>
    <ensemble><temperature units='kelvin'> {row.temperature_k} </temperature></ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nve'><timestep units='femtosecond'> {row.timestep_fs} </timestep></dynamics>
    </motion>
  </system>
</simulation>
"""


def socket_address(row: Row) -> str:
    """A short socket name (UNIX paths are limited to ~100 bytes)."""
    return f"mlb{os.getpid()}r{row.index}"


def run(row: Row, workdir: pathlib.Path, client_command: List[str], env: dict,
        client_retries: bool = False, transport: str = "unix") -> dict:
    """Run ``row``: i-PI server + ``client_command`` over ``transport``; returns
    the measured figures, with the client's log in ``client.txt`` for the caller
    to read (for ``ffmpi``, i-PI's and the client's output together).

    A client that retries its connection (``client_retries``) starts with the
    server, so that both start-ups overlap; others start once the socket exists.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown i-PI transport '{transport}'; known: {TRANSPORTS}")
    address = socket_address(row)
    socket_path = pathlib.Path(f"/tmp/ipi_{address}")
    if socket_path.exists():
        socket_path.unlink()
    total = _write_inputs(row, workdir, address, transport)
    command = [part.replace("{address}", address) for part in client_command]
    try:
        if transport == "ffmpi":
            memory = _run_mpmd(row, workdir, command, env, total)
        else:
            memory = _run_server_and_client(row, workdir, command, env, total, socket_path,
                                            client_retries)
    finally:
        if socket_path.exists():
            socket_path.unlink()
    return _figures(row, workdir, total, memory)


def _write_inputs(row: Row, workdir: pathlib.Path, address: str, transport: str) -> int:
    """The structure and ``input.xml`` in ``workdir``; the number of steps to run."""
    structure = workdir / "init.extxyz"
    structure.write_bytes(pathlib.Path(row.structure).read_bytes())
    total = max(row.warmup, 1) + row.steps * row.repeats
    (workdir / "input.xml").write_text(input_xml(row, address, total, structure.name,
                                                 transport))
    return total


def _run_server_and_client(row, workdir, command, env, total, socket_path,
                           client_retries) -> TreeMemory:
    """i-PI and the client as two processes, to the end of the run."""
    from . import executable

    deadline = time.monotonic() + row.timeout_s
    server = start_process([executable("i-pi"), "input.xml"], cwd=workdir, env=env,
                           stdout_path=workdir / "server.txt")
    client = None
    try:
        while not client_retries and not socket_path.exists():
            if server.poll() is not None:
                raise RuntimeError("i-pi exited before opening its socket:\n"
                                   + tail(workdir / "server.txt", 15))
            if time.monotonic() > deadline:
                raise TimeoutError("i-pi did not open its socket in time")
            time.sleep(0.05)
        client = start_process(command, cwd=workdir, env=env,
                               stdout_path=workdir / "client.txt")
        memory = TreeMemory(client.pid)
        _follow(server, client, memory, workdir, total, deadline, row.timeout_s)
        _check_exit(client, "the client", workdir / "client.txt")
        _check_exit(server, "i-pi", workdir / "server.txt")
        return memory
    finally:
        _stop(client, server)


def _run_mpmd(row, workdir, command, env, total) -> TreeMemory:
    """i-PI and the client in one ``mpirun`` (i-PI's <ffmpi>), to the end of the run."""
    from . import executable

    deadline = time.monotonic() + row.timeout_s
    job = start_process(
        [executable("mpirun"), "-disable-auto-cleanup", "-n", "1", executable("i-pi"),
         "input.xml", ":", "-n", "1", *command],
        cwd=workdir, env=env, stdout_path=workdir / "server.txt",
    )
    try:
        memory = TreeMemory(job.pid)
        _follow(job, None, memory, workdir, total, deadline, row.timeout_s)
        _check_exit(job, "the i-PI + client job", workdir / "server.txt")
        (workdir / "client.txt").write_bytes((workdir / "server.txt").read_bytes())
        return memory
    finally:
        _stop(job)


def _follow(server, client, memory: TreeMemory, workdir, total, deadline, timeout_s):
    """Sample memory until i-PI ends and the client after it (30 s at most)."""
    while server.poll() is None:
        memory.sample()
        if client is not None and client.poll() is not None and client.returncode != 0:
            raise RuntimeError(f"the client exited with code {client.returncode}:\n"
                               + tail(workdir / "client.txt", 15))
        if time.monotonic() > deadline:
            done = len(parse_step_times(workdir / "server.txt"))
            raise TimeoutError(
                f"i-PI ran past {timeout_s:.0f} s ({done} of {total} steps done); "
                "the last lines:\n" + tail(workdir / ("client.txt" if client else "server.txt"),
                                           10)
            )
        time.sleep(0.05)
    end = time.monotonic() + 30.0
    while client is not None and client.poll() is None and time.monotonic() < end:
        memory.sample()
        time.sleep(0.05)
    if client is not None and client.poll() is None:
        raise TimeoutError("the client did not exit within 30 s of i-PI's end")


def _check_exit(process, name: str, log: pathlib.Path):
    if process.returncode != 0:
        raise RuntimeError(f"{name} exited with code {process.returncode}:\n" + tail(log, 15))


def _stop(*processes):
    for process in processes:
        if process is not None and process.poll() is None:
            kill_group(process)
            process.wait()


def _figures(row: Row, workdir: pathlib.Path, total: int, memory: TreeMemory) -> dict:
    """Per-step times (the repeats), energy and drift from i-PI's outputs."""
    warmup = max(row.warmup, 1)
    step_seconds = parse_step_times(workdir / "server.txt")
    measured = [step_seconds[s] for s in range(warmup, total) if s in step_seconds]
    if len(measured) != row.steps * row.repeats:
        raise RuntimeError(
            f"expected {row.steps * row.repeats} timed steps in {workdir}/server.txt, "
            f"found {len(measured)}"
        )
    repeat_ms = [
        1e3 * sum(measured[i * row.steps:(i + 1) * row.steps]) / row.steps
        for i in range(row.repeats)
    ]
    properties = parse_properties(workdir / "sim.out")
    after = [p for p in properties if p[0] >= warmup]
    return {
        "repeat_ms": repeat_ms,
        "steps": row.steps,
        "measured_steps": len(measured),
        "energy0_per_atom": properties[0][3] / row.atoms if properties else None,
        "drift_ev_per_atom_ps": drift([p[1] for p in after], [p[2] for p in after], row.atoms),
        "peak_rss_mb": memory.peak_mb if memory else None,
        "notes": ["peak RSS: the client (largest process)"],
    }


def parse_step_times(path: pathlib.Path) -> dict:
    """{step: seconds} from i-PI's verbose output."""
    times = {}
    with open(path, errors="replace") as file:
        for line in file:
            match = _STEP.search(line)
            if match:
                times[int(match.group(1))] = float(match.group(2))
    return times


def parse_properties(path: pathlib.Path) -> list:
    """Rows (step, time ps, conserved eV, potential eV) of i-PI's property file."""
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        values = [float(x) for x in line.split()[:4]]
        rows.append((int(values[0]), values[1], values[2], values[3]))
    return rows
