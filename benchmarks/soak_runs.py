"""The two long runs of ``mlipdrive bench soak``: LAMMPS with a restart midway,
i-PI with our client killed and started again midway.

Both follow the engine's own output while it runs: at every record (every
``every`` steps) they note the wall-clock time, the resident memory (VmRSS)
of the processes that hold the model and the total energy. A record is
``{'step', 'time_ps', 'wall_s', 'cpu_s', 'etotal_ev', 'rss_mb', 'segment', ...}``
(``cpu_s``: CPU seconds the model's process used so far);
``segment`` counts restarts (0 before, 1 after).

- LAMMPS: one ``lmp`` process runs half the steps, ``write_restart``,
  ``clear``, ``read_restart`` (the plugin loads the model again from the
  restart file) and the other half; the thermo output is flushed at every
  record.
- i-PI: a real ``i-pi`` server runs every step (NVE); our client is stopped
  with SIGTERM (what ``kill`` sends) once half the steps are done, and a new
  one connects; i-PI gives the interrupted request to it. (SIGKILL can leave
  i-PI 3.3.1 hanging: its polling thread dies on ECONNRESET, see
  tests/test_ipi_faults.py.)
"""

import dataclasses
import os
import pathlib
import signal
import time
from typing import Callable, Dict, List, Optional

from .measure import kill_group, start_process, tail

POLL_S = 0.05


@dataclasses.dataclass
class SoakSpec:
    """One soak run: model, system, settings and length."""

    model_path: str
    structure: str  # extxyz with momenta; system.data (LAMMPS) next to it
    species: List[str]  # element of each LAMMPS atom type
    atoms: int
    steps: int = 100000
    every: int = 1000
    settings: Dict[str, str] = dataclasses.field(default_factory=lambda: {"preset": "turbo"})
    threads: int = 1
    timestep_fs: float = 1.0
    temperature_k: float = 300.0
    seed: int = 12345
    timeout_s: float = 7200.0

    @property
    def half(self) -> int:
        """The step of the restart: half the run, on a record."""
        return max(self.every, (self.steps // 2) // self.every * self.every)


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of ``pid`` now (MiB), None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> Optional[float]:
    """CPU seconds (user + system, all threads) that ``pid`` used so far: a
    shared machine slows the wall clock of a step, not the work it takes."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _settings_words(spec: SoakSpec, style: str) -> List[str]:
    values = dict(spec.settings)
    preset = values.pop("preset", "default")
    values["threads"] = str(spec.threads)
    if style == "lammps":
        return ["settings", preset] + [w for k, v in values.items() for w in (k, v)]
    return ["--settings", preset] + [w for k, v in values.items()
                                     for w in ("--" + k.replace("_", "-"), v)]


# ---------------------------------------------------------------------- LAMMPS

# cpu: LAMMPS's own wall-clock seconds since the start of the current run
_THERMO = "step time pe ke etotal cpu"


def lammps_input(spec: SoakSpec) -> str:
    pair = " ".join(["pair_style mlipdrive", spec.model_path] + _settings_words(spec, "lammps"))
    run_lines = [
        "fix nve all nve",
        f"thermo_style custom {_THERMO}",
        "thermo_modify norm no flush yes format float %.12g",
        f"thermo {spec.every}",
    ]
    return "\n".join([
        "# written by mlipdrive bench soak",
        "units metal", "atom_style atomic", "boundary p p p",
        "read_data system.data",
        pair, "pair_coeff * * " + " ".join(spec.species),
        f"timestep {spec.timestep_fs * 1e-3:.10g}",
        *run_lines,
        f"run {spec.half}",
        "write_restart soak.restart",
        "clear",
        "read_restart soak.restart  # the pair style comes back from the file",
        *run_lines,
        f"run {spec.steps - spec.half}",
    ]) + "\n"


def parse_thermo(text: str) -> List[dict]:
    """Thermo records of the log, each with its run (segment) index."""
    records, segment, inside = [], -1, False
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["Step"]:
            segment, inside = segment + 1, True
            continue
        if not inside:
            continue
        try:
            step, time_ps, pe, ke, etotal, seconds = (float(x) for x in fields)
        except ValueError:
            inside = False
            continue
        records.append({"step": int(step), "time_ps": time_ps, "epot_ev": pe,
                        "etotal_ev": etotal, "run_s": seconds, "segment": segment})
    return records


def run_lammps(spec: SoakSpec, workdir: pathlib.Path, on_record: Optional[Callable] = None) -> dict:
    """The LAMMPS soak; returns {'records', 'events', 'log_tail'}."""
    from mlipdrive import lammps

    structure = pathlib.Path(spec.structure)
    (workdir / "system.data").write_bytes(structure.with_suffix(".data").read_bytes())
    (workdir / "in.soak").write_text(lammps_input(spec))
    env = lammps.lmp_environment()
    env["OMP_NUM_THREADS"] = str(spec.threads)
    log = workdir / "log.lammps"
    process = start_process(lammps.lmp_command("in.soak", 1, ["-log", "log.lammps", "-nocite"]),
                            cwd=workdir, env=env, stdout_path=workdir / "stdout.txt")
    records: List[dict] = []
    start = time.monotonic()
    try:
        while True:
            done = process.poll() is not None
            text = log.read_text(errors="replace") if log.exists() else ""
            for record in parse_thermo(text)[len(records):]:
                record.update(wall_s=time.monotonic() - start, rss_mb=rss_mb(process.pid),
                              cpu_s=cpu_s(process.pid))
                records.append(record)
                if on_record:
                    on_record("lammps", record)
            if done:
                break
            _check_time(start, spec.timeout_s, "lmp", workdir / "stdout.txt")
            time.sleep(POLL_S)
    finally:
        if process.poll() is None:
            kill_group(process)
            process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"lmp exited with code {process.returncode}:\n"
                           + tail(workdir / "stdout.txt", 15))
    events = [{"step": spec.half, "what": "write_restart, clear, read_restart"}]
    return {"records": records, "events": events}


def _check_time(start: float, limit: float, what: str, log: pathlib.Path):
    if time.monotonic() - start > limit:
        raise TimeoutError(f"{what} ran past {limit:.0f} s; its last lines:\n" + tail(log, 15))


# ---------------------------------------------------------------------- i-PI


def ipi_input(spec: SoakSpec, address: str, structure: str) -> str:
    """NVE; properties (total energy, the conserved quantity) every record, flushed."""
    return f"""<simulation verbosity='low' safe_stride='100000000'>
  <output prefix='sim'>
    <properties stride='{spec.every}' filename='out' flush='1'>
      [ step, time{{picosecond}}, conserved{{electronvolt}}, potential{{electronvolt}} ]
    </properties>
  </output>
  <total_steps> {spec.steps} </total_steps>
  <prng><seed> {spec.seed} </seed></prng>
  <ffsocket name='driver' mode='unix' pbc='false'><address> {address} </address></ffsocket>
  <system>
    <initialize nbeads='1'>
      <file mode='ase'> {structure} </file>
      <velocities mode='thermal' units='kelvin'> {spec.temperature_k} </velocities>
    </initialize>
    <forces><force forcefield='driver'/></forces>
    <ensemble><temperature units='kelvin'> {spec.temperature_k} </temperature></ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nve'><timestep units='femtosecond'> {spec.timestep_fs} </timestep></dynamics>
    </motion>
  </system>
</simulation>
"""


def parse_properties(path: pathlib.Path) -> List[dict]:
    records = []
    if not path.exists():
        return records
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split()
        if line.startswith("#") or len(fields) < 4:
            continue
        try:
            step, time_ps, conserved, potential = (float(x) for x in fields[:4])
        except ValueError:
            continue  # a line still being written
        records.append({"step": int(step), "time_ps": time_ps, "etotal_ev": conserved,
                        "epot_ev": potential})
    return records


class _IpiRun:
    """The server, the current client and what was seen of them."""

    def __init__(self, spec: SoakSpec, workdir: pathlib.Path):
        from mlipdrive import lammps

        from .engines import executable

        self.spec, self.workdir = spec, workdir
        self.address = f"mlsoak{os.getpid()}"
        self.socket = pathlib.Path(f"/tmp/ipi_{self.address}")
        self.env = lammps.lmp_environment()
        self.env["OMP_NUM_THREADS"] = str(spec.threads)
        self.client_command = [
            executable("mlipdrive"), "ipi", "--model", spec.model_path, "--structure",
            "init.extxyz", "--unix", self.address, "--timings", *_settings_words(spec, "ipi"),
        ]
        self.server_command = [executable("i-pi"), "input.xml"]
        self.server = self.client = None
        self.clients = 0
        self.exit_codes: List[int] = []  # of the clients that ended

    def start_server(self):
        if self.socket.exists():
            self.socket.unlink()
        structure = self.workdir / "init.extxyz"
        structure.write_bytes(pathlib.Path(self.spec.structure).read_bytes())
        (self.workdir / "input.xml").write_text(ipi_input(self.spec, self.address, structure.name))
        self.server = start_process(self.server_command, cwd=self.workdir, env=self.env,
                                    stdout_path=self.workdir / "server.txt")

    def start_client(self):
        # our client retries until the server's socket exists
        self.client = start_process(self.client_command, cwd=self.workdir, env=self.env,
                                    stdout_path=self.workdir / f"client{self.clients}.txt")
        self.clients += 1

    def stop_client(self):
        """SIGTERM, as ``kill`` sends: the client closes its connection and exits."""
        self.client.send_signal(signal.SIGTERM)
        try:
            self.exit_codes.append(self.client.wait(timeout=60))
        except Exception:  # noqa: BLE001 -- a client that ignores SIGTERM is an error below
            kill_group(self.client)
            self.client.wait()
            raise RuntimeError("the client did not exit within 60 s of SIGTERM") from None

    def close(self):
        for process in (self.client, self.server):
            if process is not None and process.poll() is None:
                kill_group(process)
                process.wait()
        if self.socket.exists():
            self.socket.unlink()


def run_ipi(spec: SoakSpec, workdir: pathlib.Path, on_record: Optional[Callable] = None) -> dict:
    """The i-PI soak; returns {'records', 'events'}."""
    run = _IpiRun(spec, workdir)
    records: List[dict] = []
    events: List[dict] = []
    start = time.monotonic()
    try:
        run.start_server()
        run.start_client()
        while True:
            done = run.server.poll() is not None
            for record in parse_properties(workdir / "sim.out")[len(records):]:
                record.update(wall_s=time.monotonic() - start, rss_mb=rss_mb(run.client.pid),
                              cpu_s=cpu_s(run.client.pid), server_rss_mb=rss_mb(run.server.pid),
                              server_cpu_s=cpu_s(run.server.pid), segment=run.clients - 1)
                records.append(record)
                if on_record:
                    on_record("ipi", record)
                if not events and record["step"] >= spec.half:
                    run.stop_client()
                    events.append({"step": record["step"], "what": "client stopped (SIGTERM) "
                                   "and a new one started"})
                    run.start_client()
            if done:
                break
            if run.client.poll() not in (None, 0):
                raise RuntimeError(f"the client exited with code {run.client.returncode}:\n"
                                   + tail(workdir / f"client{run.clients - 1}.txt", 15))
            _check_time(start, spec.timeout_s, "i-PI", workdir / "server.txt")
            time.sleep(POLL_S)
        if run.server.returncode != 0:
            raise RuntimeError(f"i-pi exited with code {run.server.returncode}:\n"
                               + tail(workdir / "server.txt", 15))
        run.exit_codes.append(run.client.wait(timeout=60))
    finally:
        run.close()
    # 143: stopped by SIGTERM (connection closed first); 0: EXIT from i-PI
    return {"records": records, "events": events, "client_exit_codes": run.exit_codes}
