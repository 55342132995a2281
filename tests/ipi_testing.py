"""Helpers to run i-PI against a client in tests, examples and benchmarks.

Writes small i-PI inputs, starts the ``i-pi`` server and clients as child
processes that never outlive their ``with`` block, and reads i-PI's binary
trajectories (full float64 precision) and property files.
"""

import contextlib
import itertools
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

_COUNTER = itertools.count()


def unique_address(tag: str = "t") -> str:
    """A short UNIX socket name no other test or process uses."""
    return f"mld{tag}{os.getpid()}x{next(_COUNTER)}"


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def executable(name: str) -> str:
    """``name`` next to the running Python (the venv's ``bin``), else from PATH."""
    candidate = pathlib.Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"'{name}' not found next to {sys.executable} nor on PATH")
    return found


@dataclass
class Simulation:
    """What the i-PI input runs (see :func:`write_input`)."""

    structure: str = "init.xyz"
    steps: int = 10
    ensemble: str = "nve"  # nve, nvt, npt
    nbeads: int = 1
    timestep_fs: float = 2.0
    temperature_k: float = 80.0
    pressure_bar: float = 1000.0
    seed: int = 31415
    batch_size: int = 1
    extras: bool = False  # write the extras trajectory (of extras_type)
    forces: bool = False  # write the forces trajectory
    stride: int = 1
    extras_type: str = "energies"  # the key of the extras JSON to write
    active: Optional[Sequence[int]] = None  # the <ffsocket>'s <activelist>
    weight: float = 1.0  # i-PI's <force weight>: the factor on the forcefield


def write_input(directory, simulation: Simulation, *, unix: Optional[str] = None,
                port: Optional[int] = None, transport: str = "") -> pathlib.Path:
    """Write ``input.xml`` for ``simulation`` in ``directory``; give ``unix`` (with
    ``transport`` 'unix' or 'shm'), ``port`` ('inet') or ``transport='ffmpi'``."""
    directory = pathlib.Path(directory)
    socket_xml = _forcefield_xml(simulation, unix, port, transport)

    outputs = _output_xml(simulation)
    dynamics, ensemble = _motion_xml(simulation)

    text = f"""<simulation verbosity='low' safe_stride='1000000' floatformat='%.17e'>
  <output prefix='sim'>
    {chr(10).join('    ' + line for line in outputs).strip()}
  </output>
  <total_steps> {simulation.steps} </total_steps>
  <prng><seed> {simulation.seed} </seed></prng>
  {socket_xml}
  <system>
    <initialize nbeads='{simulation.nbeads}'>
      <file mode='ase'> {simulation.structure} </file>
      <velocities mode='thermal' units='kelvin'> {simulation.temperature_k} </velocities>
    </initialize>
    <forces><force forcefield='driver' weight='{simulation.weight!r}'/></forces>
    {ensemble}
    <motion mode='dynamics'> {dynamics} </motion>
  </system>
</simulation>
"""
    path = directory / "input.xml"
    path.write_text(text)
    return path


def _output_xml(simulation: Simulation) -> list:
    """The <output> lines: properties, positions, and forces and extras if asked."""
    s = simulation.stride
    outputs = [
        f"<properties stride='{s}' filename='out'> [ step, conserved, "
        "temperature{kelvin}, potential, kinetic_md, pressure_md, volume ] </properties>",
        f"<trajectory filename='pos' stride='{s}' format='bin'> positions "
        "</trajectory>",
    ]
    if simulation.forces:
        outputs.append(f"<trajectory filename='for' stride='{s}' format='bin'> "
                       "forces </trajectory>")
    if simulation.extras:
        outputs.append(f"<trajectory filename='extras' stride='{s}' "
                       f"extra_type='{simulation.extras_type}' flush='1'> extras </trajectory>")
    return outputs


def _motion_xml(simulation: Simulation):
    """(<dynamics>, <ensemble>) of the simulation's ensemble (nve, nvt, npt)."""
    temperature = f"<temperature units='kelvin'> {simulation.temperature_k} </temperature>"
    timestep = f"<timestep units='femtosecond'> {simulation.timestep_fs} </timestep>"
    if simulation.ensemble == "nve":
        dynamics = f"<dynamics mode='nve'> {timestep} </dynamics>"
        ensemble = f"<ensemble> {temperature} </ensemble>"
    elif simulation.ensemble == "nvt":
        thermostat = (
            "<thermostat mode='pile_l'><tau units='femtosecond'> 50 </tau>"
            "<pile_lambda> 0.5 </pile_lambda></thermostat>"
            if simulation.nbeads > 1
            else "<thermostat mode='svr'><tau units='femtosecond'> 50 </tau></thermostat>"
        )
        dynamics = f"<dynamics mode='nvt'> {timestep} {thermostat} </dynamics>"
        ensemble = f"<ensemble> {temperature} </ensemble>"
    elif simulation.ensemble == "npt":
        dynamics = (
            f"<dynamics mode='npt'> {timestep} "
            "<thermostat mode='svr'><tau units='femtosecond'> 50 </tau></thermostat>"
            "<barostat mode='flexible'><tau units='femtosecond'> 100 </tau>"
            "<thermostat mode='langevin'><tau units='femtosecond'> 50 </tau></thermostat>"
            "</barostat></dynamics>"
        )
        ensemble = (
            f"<ensemble> {temperature} <pressure units='bar'> {simulation.pressure_bar} "
            "</pressure></ensemble>"
        )
    else:
        raise ValueError(f"ensemble must be nve, nvt or npt, got '{simulation.ensemble}'")
    return dynamics, ensemble


def _forcefield_xml(simulation: Simulation, unix, port, transport: str) -> str:
    """The <ffsocket> (modes unix, inet, shm) or <ffmpi> named 'driver'."""
    if transport == "ffmpi":
        head, tail = "<ffmpi name='driver'>", "</ffmpi>"
    elif (unix is None) == (port is None):
        raise ValueError("give exactly one of unix= and port= for a socket")
    elif unix is not None:
        mode = transport or "unix"
        head = f"<ffsocket name='driver' mode='{mode}'><address> {unix} </address>"
        tail = "</ffsocket>"
    else:
        head = (f"<ffsocket name='driver' mode='inet'><address> localhost </address>"
                f"<port> {port} </port>")
        tail = "</ffsocket>"
    if simulation.batch_size > 1:
        head += f"<batch_size> {simulation.batch_size} </batch_size>"
    if simulation.active is not None:
        head += f"<activelist> {list(simulation.active)} </activelist>"
    return head + tail


class Processes:
    """Child processes that are all stopped when the ``with`` block ends."""

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.children: List[subprocess.Popen] = []
        self._logs: Dict[int, pathlib.Path] = {}

    def start(self, command: Sequence[str], name: str, env=None) -> subprocess.Popen:
        """Start ``command`` in the directory, its output going to ``name.log``."""
        log = self.directory / f"{name}.log"
        environment = dict(os.environ)
        environment.setdefault("OMP_NUM_THREADS", "1")
        environment["PYTHONUNBUFFERED"] = "1"
        # a Python child that crashes (SIGSEGV, SIGABRT) writes its stack to its log
        environment["PYTHONFAULTHANDLER"] = "1"
        if env:
            environment.update(env)
        with open(log, "ab") as output:
            child = subprocess.Popen(
                [str(c) for c in command], cwd=self.directory, stdout=output,
                stderr=subprocess.STDOUT, env=environment, start_new_session=True,
            )
        self.children.append(child)
        self._logs[child.pid] = log
        return child

    def log(self, child: subprocess.Popen) -> str:
        return self._logs[child.pid].read_text(errors="replace")

    def wait(self, child: subprocess.Popen, timeout: float) -> int:
        """The exit code of ``child``; an AssertionError with its log after ``timeout``."""
        try:
            return child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{child.args[:3]} still runs after {timeout} s; its log:\n{self.log(child)}"
            ) from None

    def kill(self, child: subprocess.Popen, sig=signal.SIGKILL):
        """Send ``sig`` to the child's process group (mpirun's ranks included)."""
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for child in self.children:
            self.kill(child)


def ipi_command(input_file="input.xml") -> List[str]:
    return [executable("i-pi"), str(input_file)]


def wait_for_unix_socket(name: str, server: subprocess.Popen, timeout: float = 30.0,
                         prefix: str = "/tmp/ipi_"):
    """Wait until i-PI created its UNIX socket (or died)."""
    path = pathlib.Path(prefix + name)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if server.poll() is not None:
            raise AssertionError(f"i-PI exited with {server.returncode} before listening")
        if time.monotonic() > deadline:
            raise AssertionError(f"i-PI did not create {path} within {timeout} s")
        time.sleep(0.05)


def remove_unix_socket(name: str, prefix: str = "/tmp/ipi_"):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(prefix + name)


# ---------------------------------------------------------------------- reading outputs

def read_binary_trajectory(path) -> np.ndarray:
    """Positions (frames, natoms, 3) in Bohr and cells (frames, 3, 3) from i-PI's 'bin' format.

    Each frame is: 9 float64 cell, int64 natoms, 3·natoms float64, int64 length
    of the '|'-joined names, the names as UCS-4, then a title as UCS-4 whose
    length is fixed for a file (``Step: %10d Bead: %5d ...``).
    """
    data = pathlib.Path(path).read_bytes()
    if not data:
        return np.zeros((0, 0, 3)), np.zeros((0, 3, 3))
    natoms = int(np.frombuffer(data, np.int64, 1, 72)[0])
    names_offset = 72 + 8 + 24 * natoms
    names_length = int(np.frombuffer(data, np.int64, 1, names_offset)[0])
    title_offset = names_offset + 8 + 4 * names_length
    # the title runs up to the next frame's cell (or the end): UCS-4 printable chars
    end = title_offset
    while end + 4 <= len(data):
        code = int.from_bytes(data[end:end + 4], "little")
        if not 32 <= code < 127:
            break
        end += 4
    frame_size = end
    if len(data) % frame_size:
        raise ValueError(f"{path}: {len(data)} bytes is not a whole number of "
                         f"{frame_size}-byte frames")
    frames = len(data) // frame_size
    raw = np.frombuffer(data, np.uint8).reshape(frames, frame_size)
    cells = raw[:, :72].copy().view(np.float64).reshape(frames, 3, 3)
    positions = raw[:, 80:80 + 24 * natoms].copy().view(np.float64).reshape(frames, natoms, 3)
    return positions, cells


def read_properties(path) -> np.ndarray:
    """i-PI's properties file as a (steps, columns) array."""
    return np.atleast_2d(np.loadtxt(path, comments="#"))


def read_extras(path) -> List[np.ndarray]:
    """Per-step values of an extras trajectory written with ``extra_type='KEY'``.

    i-PI writes a ``#EXTRAS(KEY)# Step: N`` line, then the values of KEY.
    """
    frames = []
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            frames.append(np.array([float(value) for value in line.split()]))
    return frames


# ---------------------------------------------------------------------- whole runs

@dataclass
class Run:
    """The outputs of one i-PI run (see :func:`run_simulation`)."""

    directory: pathlib.Path
    positions: List[np.ndarray]  # per bead: (frames, natoms, 3), Bohr
    cells: np.ndarray  # (frames, 3, 3), Bohr, lattice vectors as columns
    properties: np.ndarray  # (frames, columns) of write_input's properties
    client_codes: List[int]
    client_logs: List[str]
    wall_time: float

    PROPERTIES = ("step", "conserved", "temperature", "potential", "kinetic_md",
                  "pressure_md", "volume")

    def property(self, name: str) -> np.ndarray:
        return self.properties[:, self.PROPERTIES.index(name)]


def client_command(kind: str, model, *, unix: Optional[str] = None,
                   port: Optional[int] = None, ranks: int = 2,
                   extra: Sequence[str] = (), params: str = "",
                   transport: str = "") -> List[str]:
    """The command line of a client of ``kind`` for ``init.xyz`` in the run directory.

    ``mlipdrive``: ``mlipdrive ipi``; ``ipi-driver``: ``mlipdrive-ipi-driver``;
    ``mpi``: ``mpirun -np RANKS mlipdrive ipi``; ``mpi-driver``: ``mpirun -np RANKS
    mlipdrive-ipi-driver``; ``reference``: i-PI's own ``i-pi-py_driver -m
    metatomic``. ``params`` is added to the ``-o`` of the last three.
    ``transport`` 'shm' or 'ffmpi' adds the client's switch for it (for 'ffmpi' the
    command is the part after ``:`` of the MPMD line, see :func:`ffmpi_command`).
    """
    model = str(pathlib.Path(model).resolve())
    if transport == "ffmpi":
        return _ffmpi_client(kind, model, params, extra)
    if kind in ("mlipdrive", "mpi"):
        where = ["--unix", unix] if unix is not None else ["--port", str(port)]
        if transport == "shm":
            where.append("--shm")
        command = [executable("mlipdrive"), "ipi", "--model", model, "--structure",
                   "init.xyz", *where, *extra]
        if kind == "mpi":
            command = [executable("mpirun"), "-np", str(ranks), *command]
        return command
    where = ["-u", "-a", unix] if unix is not None else ["-a", "localhost", "-p", str(port)]
    if transport == "shm":
        where = ["--shm", "-a", unix]
    options = _driver_options(model, params)
    if kind == "ipi-driver":
        return [executable("mlipdrive-ipi-driver"), *where, *options, *extra]
    if kind == "mpi-driver":
        return [executable("mpirun"), "-np", str(ranks), executable("mlipdrive-ipi-driver"),
                *where, *options, *extra]
    if kind == "reference":
        return [executable("i-pi-py_driver"), *where, *options, *extra]
    raise ValueError(f"unknown client kind '{kind}'")


def _driver_options(model: str, params: str) -> List[str]:
    return ["-m", "metatomic", "-o", f"template=init.xyz,model={model}"
            + (f",{params}" if params else "")]


def _ffmpi_client(kind: str, model: str, params: str, extra: Sequence[str]) -> List[str]:
    if kind == "mlipdrive":
        return [executable("mlipdrive"), "ipi", "--model", model, "--structure",
                "init.xyz", "--ffmpi", *extra]
    if kind == "ipi-driver":
        return [executable("mlipdrive-ipi-driver"), "--mpi", *_driver_options(model, params),
                *extra]
    if kind == "reference":
        return [executable("i-pi-py_driver"), "--mpi", *_driver_options(model, params)]
    raise ValueError(f"client kind '{kind}' has no <ffmpi> form")


def ffmpi_command(client: Sequence[str], ranks: int, input_file="input.xml") -> List[str]:
    """``mpirun -disable-auto-cleanup -n 1 i-pi INPUT : -n RANKS CLIENT...``: i-PI
    and its <ffmpi> clients, as examples/ipi/README.md shows them (i-PI 3.3.1 can
    end without finishing MPI_Finalize; without the flag MPICH's mpirun then
    SIGKILLs the clients and exits with 9 after a successful run)."""
    return [executable("mpirun"), "-disable-auto-cleanup", "-n", "1", *ipi_command(input_file), ":",
            "-n", str(ranks), *client]


def run_simulation(directory, structure, simulation: Simulation, model, clients,
                   *, transport: str = "unix", extra: Sequence[str] = (),
                   params: str = "", timeout: float = 180.0, ranks: int = 1) -> Run:
    """Run i-PI with ``clients`` (kinds of :func:`client_command`) to the end.

    ``structure`` is an ``ase.Atoms`` written to ``init.xyz``; ``transport`` is
    'unix', 'inet', 'shm' or 'ffmpi' (one client kind, on ``ranks`` MPI ranks).
    Every process is stopped if anything fails; a client or server exiting with
    an error raises an AssertionError that shows its log.
    """
    import ase.io

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ase.io.write(directory / "init.xyz", structure, format="extxyz")
    unix = unique_address() if transport in ("unix", "shm") else None
    port = free_port() if transport == "inet" else None
    if "reference" in clients and unix is None and transport != "ffmpi":
        raise ValueError("i-pi-py_driver cannot wait for a server: run it over 'unix'")
    write_input(directory, simulation, unix=unix, port=port, transport=transport)
    start = time.monotonic()
    with Processes(directory) as processes:
        if transport == "ffmpi":
            codes, logs = _run_ffmpi(processes, clients, model, params, extra, ranks, timeout)
        else:
            codes, logs = _run_socket(processes, clients, model, unix, port, transport,
                                      params, extra, timeout)
    if unix is not None:
        remove_unix_socket(unix)
    wall = time.monotonic() - start
    positions, cells = [], None
    for bead in range(simulation.nbeads):
        width = len(str(simulation.nbeads - 1))  # i-PI pads bead indices
        bead_positions, bead_cells = read_binary_trajectory(
            directory / f"sim.pos_{bead:0{width}d}.bin"
        )
        positions.append(bead_positions)
        cells = bead_cells if cells is None else cells
    return Run(directory, positions, cells, read_properties(directory / "sim.out"),
               codes, logs, wall)


def _run_socket(processes, clients, model, unix, port, transport, params, extra, timeout):
    """i-PI and one process per client; their exit codes and logs."""
    server = processes.start(ipi_command(), "ipi")
    if "reference" in clients:
        wait_for_unix_socket(unix, server)
    children = [
        processes.start(
            client_command(kind, model, unix=unix, port=port, params=params,
                           extra=extra if kind != "reference" else (), transport=transport),
            f"client{i}",
        )
        for i, kind in enumerate(clients)
    ]
    codes = [processes.wait(child, timeout) for child in children]
    logs = [processes.log(child) for child in children]
    for code, log in zip(codes, logs):
        if code != 0:
            raise AssertionError(f"a client exited with {code}:\n{log}")
    server_code = processes.wait(server, 60)
    if server_code != 0:
        raise AssertionError(f"i-PI exited with {server_code}:\n{processes.log(server)}")
    return codes, logs


def _run_ffmpi(processes, clients, model, params, extra, ranks, timeout):
    """One MPMD job of i-PI and ``ranks`` ranks of the one client kind."""
    if len(clients) != 1:
        raise ValueError(f"<ffmpi> runs one client kind (on several ranks), got {clients}")
    kind = clients[0]
    client = client_command(kind, model, params=params, transport="ffmpi",
                            extra=extra if kind != "reference" else ())
    job = processes.start(ffmpi_command(client, ranks), "job")
    code = processes.wait(job, timeout)
    log = processes.log(job)
    if code != 0:
        raise AssertionError(f"the <ffmpi> job exited with {code}:\n{log}")
    return [code], [log]
