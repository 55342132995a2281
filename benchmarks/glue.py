"""The LAMMPS plugin's glue against LAMMPS's own ``lj/cut``.

For every ``lammps`` row of a model that also has ``lammps-lj`` rows (our exact
LJ model), the row of the same atoms and ranks from the same run gives:

- the whole step against ``lj/cut`` (ms/step ratio);
- the plugin's own glue (``drv``: System build, pair filtering and vectors,
  force and virial scatter) against the model's forward + backward, both from
  the plugin's timing of rank 0;
- the peak memory per atom: the largest process's peak RSS times the ranks,
  over the atoms (an upper bound on the whole run's share of each atom).

The targets hold at the size nearest :data:`GLUE_ATOMS`; larger sizes are
reported without one.

    mlipdrive bench --models lj --engines raw lammps lammps-lj --sizes 32000 256000 \\
        --settings turbo --ranks 1 2 --rounds 2 --output benchmarks/results/glue
"""

import math
from typing import List, Optional

#: the glue targets are defined at this many LJ atoms (turbo, one torch thread per rank)
GLUE_ATOMS = 32000
GLUE_DRIVER_SHARE = 0.25  # drv / (fwd + bwd)
GLUE_LJ_CUT_RATIO = 2.5  # plugin ms/step / lj/cut ms/step


def glue_rows(rows: List[dict]) -> List[dict]:
    """One entry per ``lammps`` row with its ``lammps-lj`` partner (same model,
    atoms and ranks), in (atoms, settings, ranks) order."""
    entries = []
    for ours in rows:
        if ours["engine"] != "lammps":
            continue
        reference = _partner(ours, rows)
        if reference is None:
            continue
        split = ours.get("split_ms") or {}
        model = split.get("forward", 0.0) + split.get("backward", 0.0)
        driver = split.get("driver")
        entries.append({
            "atoms": ours["atoms"],
            "ranks": ours["ranks"],
            "settings": ours["settings"],
            "model": ours["model"],
            "ms_per_step": ours["ms_per_step"],
            "lj_cut_ms_per_step": reference["ms_per_step"],
            "lj_cut_ratio": ours["ms_per_step"] / reference["ms_per_step"],
            "driver_ms": driver,
            "model_ms": model or None,
            "driver_share": driver / model if driver is not None and model else None,
            "rss_kib_per_atom": _per_atom_kib(ours),
            "lj_cut_rss_kib_per_atom": _per_atom_kib(reference),
        })
    return sorted(entries, key=lambda e: (e["atoms"], e["settings"], e["ranks"]))


def _partner(ours: dict, rows: List[dict]) -> Optional[dict]:
    for other in rows:
        if (other["engine"] == "lammps-lj" and other["model"] == ours["model"]
                and other["atoms"] == ours["atoms"] and other["ranks"] == ours["ranks"]):
            return other
    return None


def _per_atom_kib(row: dict) -> Optional[float]:
    rss = row.get("peak_rss_mb")
    if rss is None:
        return None
    return rss * 1024.0 * row["ranks"] / row["atoms"]


def glue_targets(rows: List[dict]) -> List[dict]:
    """The glue targets (plugin against lj/cut, its glue against the model) for the
    rows at the size nearest GLUE_ATOMS."""
    entries = glue_rows(rows)
    sizes = sorted({e["atoms"] for e in entries}, key=lambda n: abs(math.log(n / GLUE_ATOMS)))
    found = []
    for entry in (e for e in entries if sizes and e["atoms"] == sizes[0]):
        where = (f"{entry['model']}, {entry['settings']}, {entry['atoms']} atoms, "
                 f"{entry['ranks']} rank(s)")
        ratio = entry["lj_cut_ratio"]
        found.append(_target(f"LAMMPS plugin ms/step / lj/cut ms/step, {where}", ratio,
                             f"<= {GLUE_LJ_CUT_RATIO:g}", ratio <= GLUE_LJ_CUT_RATIO,
                             entry["atoms"]))
        share = entry["driver_share"]
        if share is not None:
            found.append(_target(f"plugin glue (drv) / model forward + backward, {where}", share,
                                 f"<= {GLUE_DRIVER_SHARE:g}", share <= GLUE_DRIVER_SHARE,
                                 entry["atoms"]))
    return found


def _target(name, value, goal, met, atoms) -> dict:
    return {"target": name, "value": value, "goal": goal, "met": met, "unit": "x",
            "atoms": atoms, "defined_atoms": GLUE_ATOMS}


def glue_markdown(rows: List[dict]) -> List[str]:
    """The glue table (empty when the run has no lammps + lammps-lj pair)."""
    entries = glue_rows(rows)
    if not entries:
        return []
    lines = [
        "## LAMMPS plugin glue against lj/cut",
        "",
        "Same run, same atoms and ranks. drv: the plugin's own work per evaluation "
        "(System build, pair filtering and vectors, force and virial scatter); fwd+bwd: "
        "the model's forward and backward (both rank 0); RSS/atom: largest process's "
        "peak RSS × ranks / atoms.",
        "",
        "| atoms | settings | ranks | ms/step | lj/cut ms/step | × lj/cut | drv ms | "
        "fwd+bwd ms | drv / fwd+bwd | RSS KiB/atom | lj/cut RSS KiB/atom |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in entries:
        lines.append(
            f"| {e['atoms']} | {e['settings']} | {e['ranks']} | {e['ms_per_step']:.1f} | "
            f"{e['lj_cut_ms_per_step']:.1f} | {e['lj_cut_ratio']:.2f} | {_fixed(e['driver_ms'])} | "
            f"{_fixed(e['model_ms'])} | {_fixed(e['driver_share'], 2)} | "
            f"{_fixed(e['rss_kib_per_atom'], 2)} | {_fixed(e['lj_cut_rss_kib_per_atom'], 2)} |"
        )
    return lines + [""]


def _fixed(value, digits=1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
