"""LAMMPS rows: the input file, running ``lmp`` (under ``mpirun`` for several
ranks) and reading the figures back from its log.

One ``lmp`` process runs a warm-up ``run`` and then one ``run`` per repeat; each
``run`` prints its loop time (setup excluded), LAMMPS's timing breakdown (Pair,
Neigh, Comm, Modify, Output, Other: average over ranks) and, for
``pair_style mlipdrive``, the plugin's own split of rank 0's evaluations.
"""

import math
import pathlib
import re
from typing import Dict, List

from ..matrix import Row
from ..measure import drift, run_process, tail

_LOOP = re.compile(
    r"^Loop time of (?P<seconds>\S+) on (?P<procs>\d+) procs for (?P<steps>\d+) steps "
    r"with (?P<atoms>\d+) atoms"
)
_SECTION = re.compile(
    r"^(?P<name>Pair|Neigh|Comm|Output|Modify|Other)\s*\|\s*(?P<rest>.*)$"
)
_PLUGIN = re.compile(
    r"^mlipdrive: (?P<n>\d+) evaluations on rank 0, ms per evaluation: system "
    r"(?P<system>\S+), forward (?P<forward>\S+), backward (?P<backward>\S+), "
    r"forces/virial (?P<store>[^\s,]+)"
)
_MEMORY = re.compile(r"^Per MPI rank memory allocation \(min/avg/max\) = \S+ \| \S+ \| (\S+)")


def input_text(row: Row, pair_lines: List[str], warmup: int, steps: int) -> str:
    """The LAMMPS input of ``row``: NVE from the system's data file."""
    lines = [
        "# written by mlipdrive bench",
        "units metal",
        "atom_style atomic",
        "boundary p p p",
        "read_data system.data",
        *pair_lines,
        "fix nve all nve",
        f"timestep {row.timestep_fs * 1e-3:.10g}  # ps",
        "thermo_style custom step pe ke etotal",
        "thermo_modify norm no flush no",
        f"thermo {row.thermo_every}",
        f"run {warmup}",
    ]
    lines += [f"run {steps}"] * row.repeats
    return "\n".join(lines) + "\n"


def run(row: Row, workdir: pathlib.Path, pair_lines: List[str], plugin: bool = True) -> dict:
    """Run ``row`` (``row.steps`` per repeat, set by the harness) with these
    pair lines; return the measured figures."""
    from mlipdrive import lammps

    structure = pathlib.Path(row.structure)
    data = structure.with_suffix(".data")
    (workdir / "system.data").write_bytes(data.read_bytes())
    warmup, steps, timeout = max(row.warmup, 1), row.steps, row.timeout_s
    (workdir / "in.bench").write_text(input_text(row, pair_lines, warmup, steps))
    command = lammps.lmp_command("in.bench", row.ranks, ["-log", "log.lammps", "-nocite"])
    result = run_process(
        command, cwd=workdir, env=environment(row, plugin), stdout_path=workdir / "stdout.txt",
        timeout=timeout,
    )
    log = workdir / "log.lammps"
    if result.timed_out:
        raise TimeoutError(f"lmp ran past {timeout:.0f} s; its last lines:\n"
                           + tail(workdir / "stdout.txt", 15))
    if result.returncode != 0:
        raise RuntimeError(f"lmp exited with code {result.returncode}; its last lines:\n"
                           + tail(workdir / "stdout.txt", 15))
    parsed = parse_log(log.read_text(), row.atoms)
    runs = parsed["runs"]
    if len(runs) != row.repeats + 1:
        raise RuntimeError(f"expected {row.repeats + 1} runs in {log}, found {len(runs)}")
    measured = runs[1:]  # the first run is the warm-up
    repeat_ms = [1e3 * r["seconds"] / r["steps"] for r in measured]
    total_steps = sum(r["steps"] for r in measured)
    split = _split(measured, total_steps)
    thermo = [point for r in measured for point in r["thermo"]]
    first = runs[0]["thermo"][0] if runs[0]["thermo"] else None
    return {
        "repeat_ms": repeat_ms,
        "steps": steps,
        "measured_steps": total_steps,
        "split_ms": split,
        "energy0_per_atom": first[1] / row.atoms if first else None,
        "drift_ev_per_atom_ps": drift(
            [p[0] * row.timestep_fs * 1e-3 for p in thermo], [p[3] for p in thermo], row.atoms
        ),
        "peak_rss_mb": result.peak_rss_mb,
        "lammps_memory_mb": parsed["memory_mb"],
        "notes": ["peak RSS: largest lmp process (rank)"] if row.ranks > 1 else [],
    }


def _split(runs: List[dict], total_steps: int) -> Dict[str, float]:
    """LAMMPS sections (and the plugin's phases) as ms/step over the runs."""
    sections: Dict[str, float] = {}
    for r in runs:
        for name, seconds in r["sections"].items():
            sections[name] = sections.get(name, 0.0) + seconds
    per_step = {name: 1e3 * s / total_steps for name, s in sections.items()}
    split = {
        "neighbors": per_step.get("Neigh", 0.0),
        "communication": per_step.get("Comm", 0.0),
        "engine": sum(per_step.get(k, 0.0) for k in ("Modify", "Output", "Other")),
    }
    pair = per_step.get("Pair", 0.0)
    plugin = [r["plugin"] for r in runs if r["plugin"]]
    if plugin:
        # the plugin's ms per evaluation (rank 0; a run's evaluations include its
        # setup evaluation)
        evaluations = sum(p["n"] for p in plugin)

        def mean(phase):
            return sum(p[phase] * p["n"] for p in plugin) / evaluations

        split["forward"] = mean("forward")
        split["backward"] = mean("backward")
        # the plugin's own glue: building the System, then forces and virial
        split["driver"] = mean("system") + mean("store")
    else:
        split["model"] = pair
    return {key: value for key, value in split.items() if value > 0 or key != "neighbors"}


def parse_log(text: str, atoms: int) -> dict:
    """Runs (loop seconds, steps, sections, plugin split, thermo) of a LAMMPS log."""
    runs = []
    current = {"thermo": [], "sections": {}, "plugin": None}
    in_thermo = False
    memory = None
    for line in text.splitlines():
        stripped = line.strip()
        match = _MEMORY.match(stripped)
        if match:
            memory = max(memory or 0.0, float(match.group(1)))
        if stripped.startswith("Step") and "TotEng" in stripped:
            in_thermo = True
            continue
        match = _LOOP.match(stripped)
        if match:
            in_thermo = False
            current.update(
                seconds=float(match.group("seconds")),
                steps=int(match.group("steps")),
                procs=int(match.group("procs")),
            )
            runs.append(current)
            current = {"thermo": [], "sections": {}, "plugin": None}
            continue
        if in_thermo:
            fields = stripped.split()
            try:
                values = [float(x) for x in fields]
            except ValueError:
                in_thermo = False
                continue
            if len(values) == 4 and all(math.isfinite(v) for v in values):
                current["thermo"].append(values)
            continue
        target = runs[-1] if runs else None
        match = _PLUGIN.match(stripped)
        if match and target is not None:
            target["plugin"] = {
                "n": int(match.group("n")),
                **{k: float(match.group(k)) for k in ("system", "forward", "backward", "store")},
            }
            continue
        match = _SECTION.match(stripped)
        if match and target is not None:
            columns = [c.strip() for c in match.group("rest").split("|")]
            try:
                # min | avg | max | %varavg | %total; 'Other' has only avg
                average = float(columns[1] if columns[1] else columns[0])
            except (ValueError, IndexError):
                continue
            target["sections"][match.group("name")] = average
    return {"runs": runs, "memory_mb": memory}


def environment(row: Row, plugin: bool = True) -> Dict[str, str]:
    """Environment of ``lmp``: the wheel's MPI library, threads, and the plugin
    path (without it LAMMPS does not load the plugin, nor torch, at start)."""
    from mlipdrive import lammps

    env = lammps.lmp_environment()
    env["OMP_NUM_THREADS"] = str(row.threads)
    if not plugin:
        env.pop("LAMMPS_PLUGIN_PATH", None)
    return env
