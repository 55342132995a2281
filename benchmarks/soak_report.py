"""What a soak run shows: memory growth, step-time flatness, energy drift
(:func:`summary`), and the record as markdown and a PNG (:func:`write`).

Definitions (all from the records, every ``every`` steps):

- **step time** of a block: the engine's time for the block's steps over
  their number (LAMMPS: its own run clock, ``cpu``; i-PI: when the record
  appeared, polled every 50 ms). The block that holds the restart (model
  loaded again) and the first block (warm-up) are left out of the flatness.
- **flatness**: median ms/step of the last tenth of the blocks over that of
  the first tenth, minus 1; and the least-squares slope over the run, as a
  change per 10^5 steps relative to the median.
- **memory growth**: resident memory (VmRSS) of the process that holds the
  model, from the end of its first block to its last record, relative; per
  segment (LAMMPS: one process throughout, also over the restart; i-PI: each
  client) and, for LAMMPS, over the whole run.
- **drift**: least-squares slope of the total energy per atom against
  simulated time (eV/atom/ps), over the whole run (restart included).
"""

import pathlib
import statistics
from typing import Dict, List, Optional

import numpy as np

from .measure import drift

#: the growth of memory that counts as flat
MEMORY_GROWTH_LIMIT = 0.01


def block_times(records: List[dict]) -> List[dict]:
    """ms/step of each block between consecutive records of one segment."""
    blocks = []
    for before, after in zip(records, records[1:]):
        steps = after["step"] - before["step"]
        if steps <= 0:
            continue  # the same step again after a restart
        if "run_s" in after and after["segment"] == before["segment"]:
            seconds = after["run_s"] - before["run_s"]
        else:
            seconds = after["wall_s"] - before["wall_s"]
        cpu = None
        if after.get("cpu_s") is not None and before.get("cpu_s") is not None:
            cpu = 1e3 * (after["cpu_s"] - before["cpu_s"]) / steps
        blocks.append({
            "step": after["step"], "ms_per_step": 1e3 * seconds / steps, "cpu_ms_per_step": cpu,
            # i-PI's block across the client's replacement (LAMMPS's clock
            # restarts with each run: its blocks never hold the restart)
            "restart": after["segment"] != before["segment"],
        })
    return blocks


def flatness(blocks: List[dict], key: str = "ms_per_step") -> Dict[str, Optional[float]]:
    """Median of ``key`` over the run, its last tenth over its first tenth, and
    its least-squares slope per 1e5 steps relative to the median."""
    steady = [b for b in blocks[1:] if not b["restart"] and b.get(key) is not None]
    if len(steady) < 4:
        return {"last_over_first": None, "slope_per_1e5_steps": None, "median_ms": None}
    tenth = max(1, len(steady) // 10)
    first = statistics.median(b[key] for b in steady[:tenth])
    last = statistics.median(b[key] for b in steady[-tenth:])
    median = statistics.median(b[key] for b in steady)
    slope = np.polyfit([b["step"] for b in steady], [b[key] for b in steady], 1)[0]
    return {"last_over_first": last / first - 1.0, "slope_per_1e5_steps": slope * 1e5 / median,
            "median_ms": median, "first_ms": first, "last_ms": last}


def memory(records: List[dict], key: str = "rss_mb") -> Dict[str, object]:
    """Growth from the end of the first block of each segment to its end."""
    segments = {}
    for segment in sorted({r["segment"] for r in records}):
        values = [r[key] for r in records if r["segment"] == segment and r.get(key)]
        if len(values) >= 3:
            segments[segment] = {"start_mb": values[1], "end_mb": values[-1],
                                 "max_mb": max(values), "growth": values[-1] / values[1] - 1.0}
    values = [r[key] for r in records if r.get(key)]
    whole = values[-1] / values[1] - 1.0 if len(values) >= 3 else None
    growth = [s["growth"] for s in segments.values()]
    return {"segments": segments, "whole_run_growth": whole,
            "largest_segment_growth": max(growth) if growth else None}


def summary(result: dict, atoms: int) -> dict:
    records = result["records"]
    blocks = block_times(records)
    restart = _restart_jump(records, atoms)
    out = {
        "steps_done": records[-1]["step"] if records else 0,
        "records": len(records),
        "step_time": flatness(blocks),
        "cpu_time": flatness(blocks, "cpu_ms_per_step"),
        "memory": memory(records),
        "drift_ev_per_atom_ps": drift([r["time_ps"] for r in records],
                                      [r["etotal_ev"] for r in records], atoms),
        "restart_energy_jump_ev_per_atom": restart,
    }
    if any("server_rss_mb" in r for r in records):
        out["server_memory"] = memory(records, "server_rss_mb")
    growth = out["memory"]["largest_segment_growth"]
    out["memory_flat"] = None if growth is None else growth < MEMORY_GROWTH_LIMIT
    return out


def _restart_jump(records: List[dict], atoms: int) -> Optional[float]:
    """|E after - E before| per atom at a step recorded on both sides of a restart."""
    by_step: Dict[int, List[float]] = {}
    for record in records:
        by_step.setdefault(record["step"], []).append(record["etotal_ev"])
    twice = [values for values in by_step.values() if len(values) > 1]
    if not twice:
        return None
    return max(abs(v[-1] - v[0]) for v in twice) / atoms


# ---------------------------------------------------------------------- output


def markdown(record: dict) -> str:
    spec = record["spec"]
    lines = [
        f"# mlipdrive bench soak: {record['model']}, {spec['atoms']} atoms, "
        f"{spec['steps']} steps, settings {record['settings']}",
        "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine'].get('cpu')}, load average "
        f"{record['machine'].get('load_average')} -> {record['machine'].get('load_average_end')}; "
        f"{spec['threads']} torch thread(s); timestep {spec['timestep_fs']:g} fs; a record every "
        f"{spec['every']} steps.",
        "",
        "| engine | steps | CPU ms/step (median) | CPU: last/first - 1 | CPU: slope per 1e5 "
        "steps | wall ms/step (median) | wall: last/first - 1 | memory growth (largest "
        "segment; whole run) | RSS start -> end (MiB) | drift (meV/atom/ps) | energy jump at "
        "restart (eV/atom) | midway |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |",
    ]
    for engine, run in record["runs"].items():
        lines.append(_row(engine, run))
    lines += ["", "CPU ms/step: CPU time of the process holding the model (LAMMPS; i-PI's "
              "client) per step, which other processes sharing the cores do not change; wall "
              "ms/step: the engine's own clock, which they do. Memory flat means growth < 1 % "
              "(from the end of the first block of each process segment to its end). See "
              "benchmarks/README.md for the definitions."]
    return "\n".join(lines) + "\n"


def _row(engine: str, run: dict) -> str:
    if run.get("status") != "ok":
        return f"| {engine} | failed: {run.get('error', '').splitlines()[0]} |" + " |" * 10
    s = run["summary"]
    wall, cpu, m = s["step_time"], s.get("cpu_time") or {}, s["memory"]
    segments = "; ".join(f"{v['start_mb']:.0f} -> {v['end_mb']:.0f}" for v in m["segments"].values())
    whole = "" if m["whole_run_growth"] is None else f"; {100 * m['whole_run_growth']:+.2f} %"
    jump = s["restart_energy_jump_ev_per_atom"]
    drift = s["drift_ev_per_atom_ps"]
    cells = [
        engine, str(s["steps_done"]), _f(cpu.get("median_ms")), _pct(cpu.get("last_over_first")),
        _pct(cpu.get("slope_per_1e5_steps")), _f(wall["median_ms"]),
        _pct(wall["last_over_first"]), f"{_pct(m['largest_segment_growth'])}{whole}", segments,
        _f(None if drift is None else 1e3 * drift), "-" if jump is None else f"{jump:.2g}",
        run["events"][0]["what"] if run["events"] else "-",
    ]
    return "| " + " | ".join(cells) + " |"


def _f(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:+.2f} %"


def plot(record: dict, path: pathlib.Path):
    """Step time, memory and energy against the step, one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    atoms = record["spec"]["atoms"]
    for engine, run in record["runs"].items():
        if run.get("status") != "ok":
            continue
        blocks = [b for b in run["blocks"] if not b["restart"]]
        cpu = [b for b in blocks if b.get("cpu_ms_per_step") is not None]
        line = axes[0].plot([b["step"] for b in cpu], [b["cpu_ms_per_step"] for b in cpu], ".-",
                            label=f"{engine}: CPU time")[0]
        axes[0].plot([b["step"] for b in blocks], [b["ms_per_step"] for b in blocks], ":",
                     color=line.get_color(), alpha=0.6, label=f"{engine}: wall clock")
        records = run["records"]
        line = axes[1].plot([r["step"] for r in records], [r["rss_mb"] for r in records], ".-",
                            label=f"{engine} (process with the model)")[0]
        if any(r.get("server_rss_mb") for r in records):
            axes[1].plot([r["step"] for r in records], [r["server_rss_mb"] for r in records],
                         "--", color=line.get_color(), label="i-PI server")
        e0 = records[0]["etotal_ev"]
        axes[2].plot([r["step"] for r in records],
                     [1e3 * (r["etotal_ev"] - e0) / atoms for r in records], ".-", label=engine)
        for event in run["events"]:
            for axis in axes:
                axis.axvline(event["step"], color="grey", lw=0.8, ls=":")
    axes[0].set_ylabel("ms per step")
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylabel("resident memory (MiB)")
    axes[2].set_ylabel("E_total - E_0 (meV/atom)")
    axes[2].set_xlabel("MD step (dotted: restart / client replaced)")
    for axis in axes:
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle(f"soak: {record['model']}, {atoms} atoms, {record['settings']}, "
                    f"{record['spec']['steps']} steps", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
