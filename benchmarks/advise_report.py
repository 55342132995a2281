"""What ``mlipdrive advise`` concludes from its measured rows, and its report.

Everything here is computed from the JSON record alone (``--render`` redoes
it): the table of options per engine, the best one, its command lines, the
size from which more ranks pay (:func:`mlipdrive.bench.ghosts.crossover`) and,
after ``--check``, whether a longer measurement agrees.
"""

import pathlib
import shlex
from typing import Dict, List, Optional

from .ghosts import EXTRA_FIXED, EXTRA_PER_GHOST, RankCosts, crossover
from .models import MACE_PATH, ROOT

ENGINE_NAMES = {"lammps": "LAMMPS (pair_style mlipdrive)", "ipi": "i-PI (mlipdrive ipi)"}


def options(rows: List[dict], engine: str, settings: Optional[str] = None) -> List[dict]:
    """The measured rows of ``engine`` (one settings label or all), fastest first."""
    found = [r for r in rows if r["engine"] == engine and r.get("status") == "ok"
             and (settings is None or r["settings"] == settings)]
    return sorted(found, key=lambda r: r["ms_per_step"])


def threads_ok(row: dict) -> Optional[bool]:
    """Whether every rank computed on the threads asked for (None: not seen)."""
    seen = row.get("threads_seen")
    if not seen:
        return None
    return len(seen) == row["ranks"] and all(n == row["threads"] for n in seen)


def recommended_settings(record: dict) -> Dict[str, str]:
    """Settings label of each engine's fastest option."""
    chosen = {}
    for engine in record["plan"]["engines"]:
        found = options(record["rows"], engine)
        if found:
            chosen[engine] = found[0]["settings"]
    return chosen


def layout(row: dict) -> str:
    return f"{row['ranks']}x{row['threads']}"


# ---------------------------------------------------------------------- commands


def model_argument(record: dict) -> str:
    """The model as a user would name it in a command line."""
    given = record["plan"]["model"]
    if given == "mace":
        return str(MACE_PATH.relative_to(ROOT))
    if given == "lj":
        return "lj-argon.pt"
    return given


def commands(record: dict, row: dict) -> List[str]:
    """The exact lines that run ``row``'s option outside the harness."""
    made = (["# lj-argon.pt is made by: python models/lj/export_lj.py lj-argon.pt"]
            if record["plan"]["model"] == "lj" else [])
    return made + _engine_commands(record, row)


def _engine_commands(record: dict, row: dict) -> List[str]:
    values = dict(row["settings_values"])
    preset = values.pop("preset", "default")
    model = model_argument(record)
    threads, ranks = row["threads"], row["ranks"]
    values["threads"] = str(threads)
    omp = f"OMP_NUM_THREADS={threads}"
    if row["engine"] == "lammps":
        words = ["pair_style mlipdrive", model, "settings", preset]
        words += [f"{key} {value}" for key, value in values.items()]
        launch = f"{omp} mlipdrive lammps --in in.lammps" + (f" -np {ranks}" if ranks > 1 else "")
        return [
            "# in the LAMMPS input:",
            " ".join(words),
            pair_coeff_line(record),
            "# run (= " + (f"mpirun -np {ranks} " if ranks > 1 else "")
            + "lmp -in in.lammps with the plugin and MPI library paths set, as measured):",
            launch,
        ]
    structure = record["plan"]["structure"] or "init.xyz"
    words = [omp] + ([f"mpirun -np {ranks}"] if ranks > 1 else [])
    words += ["mlipdrive ipi --model", model, "--structure", shlex.quote(structure),
              "--unix NAME --settings", preset]
    words += [f"--{key.replace('_', '-')} {value}" for key, value in values.items()]
    return ["# with i-PI serving <ffsocket mode='unix'><address>NAME</address>:", " ".join(words)]


def pair_coeff_line(record: dict) -> str:
    """``pair_coeff`` with the element of each atom type spelled out: in the
    user's own type order where their structure gave one (a LAMMPS data file),
    else in the measured data file's (the model's order), which the user's input
    need not share (the shipped example lists Cu Al, the model Al Cu)."""
    own = record["system"].get("type_order")
    species = own or record["system"]["species"]
    mapping = ", ".join(f"type {i} = {symbol}" for i, symbol in enumerate(species, 1))
    where = (f", as in {record['plan']['structure']}" if own
             else ": list YOUR data file's types in its order")
    return f"pair_coeff * * {' '.join(species)}   # {mapping}{where}"


# ---------------------------------------------------------------------- ranks


def _lammps_shell_words(model: dict) -> str:
    from mlipdrive.neighbors import PAIR_SORT_MARGIN

    if model.get("lammps_within_reach"):
        return f"within the cutoff × {1.0 + PAIR_SORT_MARGIN:g} of a local atom: range = cutoff"
    return "range + neighbor skin"


def rank_costs(record: dict, engine: str, settings: str, ranks: int) -> Optional[RankCosts]:
    """The measured costs behind :func:`crossover` (None without the rows)."""
    rows = options(record["rows"], engine, settings)
    one = _find(rows, ranks=1, threads=1)
    many = _find(rows, ranks=ranks, threads=1)
    one_rank = [r for r in rows if r["ranks"] == 1]
    if one is None or many is None or not one_rank:
        return None
    # i-PI's own side of the step (integrator, output, socket) stays serial
    serial = (one.get("split_ms") or {}).get("engine", 0.0) if engine == "ipi" else 0.0
    system = record["system"]
    costs = RankCosts(
        engine=engine, atoms=system["atoms"], lengths=tuple(system["lengths"]),
        shell=record["model"]["shell"][engine], ranks=ranks, one_rank_ms=one["ms_per_step"],
        serial_ms=serial, ranks_ms=many["ms_per_step"],
        best_ms=min(r["ms_per_step"] for r in one_rank),
        within_reach=engine == "lammps" and bool(record["model"].get("lammps_within_reach")),
    )
    counted = many.get("ghosts_per_rank")
    if counted:
        costs.ghost_scale = counted / costs.ghosts(costs.atoms)
    return costs


def _find(rows: List[dict], **fields) -> Optional[dict]:
    for row in rows:
        if all(row.get(k) == v for k, v in fields.items()):
            return row
    return None


def rank_lines(record: dict, engine: str, settings: str) -> List[str]:
    """When more ranks would pay, projected both ways (:data:`EXTRA_FIXED`,
    :data:`EXTRA_PER_GHOST`): the two ends of what one measurement allows."""
    lines = []
    counts = sorted({r["ranks"] for r in options(record["rows"], engine, settings)} - {1})
    for ranks in counts:
        costs = rank_costs(record, engine, settings, ranks)
        if costs is None:
            continue
        found = {}
        for extra in (EXTRA_FIXED, EXTRA_PER_GHOST):
            costs.extra = extra
            found[extra] = crossover(costs)
        result = found[EXTRA_PER_GHOST]
        measured = (f"measured at {costs.atoms} atoms: {costs.ghosts(costs.atoms):.0f} ghosts per "
                    f"rank ({_counted(engine)}; {costs.ghost_scale:.2f}x the geometric count of a "
                    f"{costs.shell:g} Å shell), {100 * result.ghost_share_measured:.0f} % of the "
                    f"atoms a rank evaluates; the ranks paid {costs.extra_ms:.3g} ms/step beyond "
                    f"their share of the one-rank work, {result.ghost_cost_ratio:.2f}x a local "
                    "atom's cost per ghost")
        lines.append(f"- {_verdict(ranks, costs.atoms, found)} ({measured}; projected with "
                     "the shell's geometry and every cost as measured: an estimate, not a "
                     "measurement)")
    return lines


def _verdict(ranks: int, atoms: int, found: dict) -> str:
    low, high = found[EXTRA_FIXED], found[EXTRA_PER_GHOST]
    who = f"{ranks} ranks x 1 thread"
    if low.atoms is None and high.atoms is None:
        return (f"{who} never beat the best one-rank layout: even without ghosts their "
                "measured cost per atom is higher")
    if high.atoms is not None and high.atoms <= atoms:
        return f"{who} already pay at this size"
    def size(result):
        return "never" if result.atoms is None else f"{_atoms(result.atoms)} atoms " \
            f"(ghosts below {100 * result.ghost_share_threshold:.0f} % of a rank's atoms)"
    return (f"{who} would start to pay from about {size(low)} if what the ranks paid beyond "
            f"their share is a cost per step and a ghost costs at most a local atom, to "
            f"{size(high)} if all of it grows with the ghosts")


def _counted(engine: str) -> str:
    return "the plugin's ghosts on rank 0" if engine == "lammps" else "mlipdrive.halo's domains"


def _atoms(value: float) -> str:
    if value >= 1e4:
        digits = f"{value:.1e}".split("e")
        return f"{digits[0]}e{int(digits[1])}"
    return f"{value:.0f}"


# ---------------------------------------------------------------------- check


def check_lines(record: dict, engine: str, chosen: dict) -> List[str]:
    """Whether the longer re-measurement (``--check``) agrees with ``chosen``."""
    rows = options(record.get("check_rows") or [], engine, chosen["settings"])
    if not rows:
        return []
    best = rows[0]
    again = _find(rows, ranks=chosen["ranks"], threads=chosen["threads"])
    table = ", ".join(f"{layout(r)} {r['ms_per_step']:.3g} ± {r['spread_ms']:.2g}" for r in rows)
    if again is best:
        verdict = f"agrees: {layout(best)} is again the fastest"
    elif again is None:
        verdict = f"{layout(chosen)} did not run in the check"
    else:
        slower = again["ms_per_step"] / best["ms_per_step"] - 1.0
        within = again["ms_per_step"] - best["ms_per_step"] <= again["spread_ms"] + best["spread_ms"]
        verdict = (f"disagrees: {layout(best)} was fastest, the recommended {layout(chosen)} "
                   f"{100 * slower:.0f} % slower" + (" (within the spread)" if within else ""))
    return [f"- check ({chosen['settings']}, 2 interleaved rounds, 3x longer; ms/step): "
            f"{table}; {verdict}"]


# ---------------------------------------------------------------------- report


def markdown(record: dict) -> str:
    plan, model, system = record["plan"], record["model"], record["system"]
    lines = [
        f"# mlipdrive advise: {model['label']} on {system['atoms']} atoms",
        "",
        f"Command: `{record['command']}`  ",
        f"Machine: {record['machine'].get('cpu')}, {plan['cores']} cores planned for, load "
        f"average {record['machine'].get('load_average')} -> "
        f"{record['machine'].get('load_average_end')}  ",
        f"Model: interaction range {model['interaction_range']:g} Å, cutoff {model['cutoff']:g} Å; "
        f"ghost shell LAMMPS {model['shell']['lammps']:g} Å ({_lammps_shell_words(model)}), i-PI client "
        f"{model['shell']['ipi']:g} Å (range + the skin setting)  ",
        f"Timestep for ns/day: {plan['timestep_fs']:g} fs. Each figure: median of "
        f"{plan['repeats']} repeats of ~{plan['budget_s']:g} s, after {plan['warmup']} warm-up steps.",
        "",
    ]
    floors = [r for r in record["rows"] if r["engine"] == "raw" and r.get("status") == "ok"]
    if floors:
        lines.append("Model floor (forward + backward only): " + ", ".join(
            f"{r['settings']} {r['threads']} thread(s) {r['ms_per_step']:.3g} ms" for r in floors))
        lines.append("")
    for engine in plan["engines"]:
        lines += _engine_section(record, engine)
    failed = [r for r in record["rows"] if r.get("status") != "ok"]
    for row in failed:
        lines.append(f"- FAILED: {row['engine']} {layout(row)} {row['settings']}: "
                     f"{(row.get('error') or row.get('reason') or '').splitlines()[0]}")
    return "\n".join(lines) + "\n"


def _engine_section(record: dict, engine: str) -> List[str]:
    rows = options(record["rows"], engine)
    lines = [f"## {ENGINE_NAMES[engine]}", ""]
    if not rows:
        return lines + ["No measured option.", ""]
    lines += [
        "| ranks x threads | settings | ms/step | ± | ns/day | threads seen per rank |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        seen = row.get("threads_seen") or []
        mark = {True: "ok", False: "NOT as asked", None: "not seen"}[threads_ok(row)]
        lines.append(
            f"| {layout(row)} | {row['settings']} | {row['ms_per_step']:.3g} | "
            f"{row['spread_ms']:.2g} | {row['ns_per_day']:.3g} | "
            f"{','.join(map(str, seen)) or '-'} ({mark}) |"
        )
    best = rows[0]
    lines += ["", f"**Recommended: {best['settings']}, {best['ranks']} rank(s) x {best['threads']} "
              f"thread(s): {best['ms_per_step']:.3g} ms/step, {best['ns_per_day']:.3g} ns/day** "
              "(the fastest measured option)."]
    for settings in sorted({r["settings"] for r in rows} - {best["settings"]}):
        other = options(record["rows"], engine, settings)[0]
        lines.append(f"Best with {settings}: {layout(other)}, {other['ms_per_step']:.3g} ms/step, "
                     f"{other['ns_per_day']:.3g} ns/day.")
    lines += ["", "```", *commands(record, best), "```", ""]
    lines += rank_lines(record, engine, best["settings"])
    lines += check_lines(record, engine, best)
    return lines + [""]


def write(record: dict, output: pathlib.Path, write_json: bool = True) -> int:
    from .report import write_json as write_record

    output.mkdir(parents=True, exist_ok=True)
    if write_json:
        write_record(record, output / "advise.json")
    (output / "advise.md").write_text(markdown(record))
    print(f"mlipdrive advise: wrote {'advise.json, ' if write_json else ''}advise.md in {output}/")
    return 0
