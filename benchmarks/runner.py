"""Run a benchmark matrix: build the systems, run every row, collect the figures.

Order: per model and system size, the in-process rows first (the floor first
of all; they also tell how long a step takes), then the rows that start their
own programs (LAMMPS, i-PI), whose steps per repeat are chosen from those
timings. Rows of one model and size run close together in time, so that their
ratios are honest on a noisy machine; with ``rounds`` > 1 the rows of one model
and size run that many times in turn, and each row's repeats of every round
are pooled (a slow minute then touches every row alike).

In-process rows run in worker processes (``mlipdrive.bench.worker``): one per
row with ``isolate`` (fresh torch state and allocator, exact peak memory), or
one per model, size and rank count otherwise (fewer process starts: quick
mode). Rows can share a process because each loads its own model, and
loading applies the process-wide torch switches of its settings; the
references reset those switches to torch's defaults.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

from . import engines as engines_module
from . import models as models_module
from . import systems as systems_module
from .matrix import Row, expand, parse_settings
from .measure import run_process, summary, tail
from .progress import Progress


@dataclasses.dataclass
class Options:
    """What to run (the ``mlipdrive bench`` options)."""

    models: Sequence[str] = ("mace", "lj")
    engines: Optional[Sequence[str]] = None  # None: all
    sizes: Sequence[int] = (100, 1000, 8000)
    settings: Sequence[str] = ("default", "turbo")
    ranks: Sequence[int] = (1, 2)
    beads: int = 1  # i-PI rows only
    threads: int = 1
    device: str = "cpu"
    timestep_fs: float = 1.0
    steps: int = 0  # per repeat; 0: from the time budget
    budget_s: float = 2.0
    max_steps: int = 2000
    repeats: int = 3
    rounds: int = 1  # the rows of one model and size, run this many times in turn
    warmup: int = 5
    timeout_s: float = 1800.0
    isolate: bool = True
    structure: Optional[str] = None  # unit cell to replicate instead of the default
    seed: int = 12345
    quick: bool = False

    @classmethod
    def quick_defaults(cls, **overrides) -> "Options":
        """The CI smoke test: every engine on the LJ model and ~100 atoms, both
        presets on one rank and the default on two, a fraction of a second per
        repeat. (The shipped MACE costs ~12 ms per step at 100 atoms on one
        core, but its first calls take seconds in every engine and process:
        too slow for a two-minute budget over 30 rows.)"""
        values = dict(
            models=("lj",), sizes=(100,), ranks=(1, 2), budget_s=0.25, max_steps=40, repeats=2,
            warmup=2, isolate=False, timeout_s=60.0, quick=True,
        )
        values.update(overrides)
        return cls(**values)


def prepare(options: Options, workdir: pathlib.Path):
    """Models, systems and rows; rows that cannot run get a 'skipped' reason."""
    settings = [parse_settings(text, options.threads) for text in options.settings]
    chosen = engines_module.select(list(options.engines) if options.engines else None)
    models = [models_module.resolve(name, workdir, options.structure) for name in options.models]
    systems: Dict[tuple, dict] = {}
    for model in models:
        for size in options.sizes:
            atoms = systems_module.build(model.system, size, seed=options.seed)
            folder = workdir / "systems" / f"{model.label}-{size}"
            species = systems_module.species(atoms, model.atomic_types)
            path = systems_module.write(atoms, folder, species)
            systems[(model.label, size)] = {
                "atoms": len(atoms),
                "structure": str(path),
                "species": species,
                "system": model.system.name,
                "temperature_k": model.system.temperature_k,
            }
    common = dict(
        threads=options.threads, device=options.device, timestep_fs=options.timestep_fs,
        steps=options.steps, repeats=options.repeats, warmup=options.warmup,
        budget_s=options.budget_s, max_steps=options.max_steps,
        timeout_s=options.timeout_s, seed=options.seed, beads=options.beads,
    )
    rows = expand(engines=chosen, models=models, systems=systems, sizes=options.sizes,
                  settings=settings, ranks=options.ranks, common=common)
    if options.quick:
        # smoke test: several ranks with the first settings only
        rows = [row for row in rows if row.ranks == 1 or row.settings == settings[0][0]]
        for index, row in enumerate(rows):
            row.index = index
    skipped: Dict[int, str] = {}
    reasons = {engine.name: engine.unavailable() for engine in chosen}
    missing = {model.label: model.missing for model in models}
    mpirun_missing = engines_module._executable("mpirun") is None
    for row in rows:
        reason = missing[row.model] or reasons[row.engine]
        if not reason and row.ranks > 1 and mpirun_missing:
            reason = "no mpirun next to this Python nor on PATH (pip install mpich)"
        if reason:
            skipped[row.index] = reason
    return models, systems, rows, skipped


def run(options: Options, *, progress: Optional[Progress] = None,
        workdir: Optional[pathlib.Path] = None, keep_work: bool = False) -> dict:
    """Run the matrix; returns {'models', 'rows' (results), 'options', 'wall_s'}."""
    start = time.monotonic()
    own_workdir = workdir is None
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="mlipdrive-bench-") if own_workdir else workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()  # every path handed to an engine is absolute
    try:
        models, _systems, rows, skipped = prepare(options, workdir)
        progress = progress or Progress(len(rows), enabled=False)
        progress.total = len(skipped) + (len(rows) - len(skipped)) * options.rounds
        results: Dict[int, dict] = {}
        for batch in _batches(rows, options.isolate, options.rounds):
            runnable = [row for row in batch if row.index not in skipped]
            for row in batch:
                if row.index in skipped and row.index not in results:
                    results[row.index] = {"status": "skipped", "reason": skipped[row.index]}
                    progress.done(row.label, "skipped: " + skipped[row.index])
            if not runnable:
                continue
            earlier = {row.index: results.pop(row.index) for row in runnable
                       if row.index in results}
            if engines_module.ENGINES[runnable[0].engine].in_process:
                _run_worker(runnable, workdir, results, progress)
            else:
                for row in runnable:
                    _run_external(row, rows, results, workdir, progress)
            for index, record in earlier.items():
                results[index] = pool_rounds(record, results[index])
        collected = [_collect(row, results.get(row.index)) for row in rows]
    finally:
        if own_workdir and not keep_work:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "models": [model.to_dict() for model in models],
        "rows": collected,
        "wall_s": time.monotonic() - start,
        "workdir": str(workdir) if keep_work or not own_workdir else None,
    }


def _batches(rows: List[Row], isolate: bool, rounds: int = 1) -> List[List[Row]]:
    """Rows in run order, grouped: per (model, atoms), in-process groups first
    (floor first), then external rows one by one; each (model, atoms) ``rounds``
    times in a row."""
    by_system: Dict[tuple, List[Row]] = {}
    for row in rows:
        by_system.setdefault((row.model, row.atoms), []).append(row)
    batches: List[List[Row]] = []
    for system_rows in by_system.values():
        groups: Dict[tuple, List[Row]] = {}
        external: List[List[Row]] = []
        for row in system_rows:
            engine = engines_module.ENGINES[row.engine]
            if not engine.in_process:
                external.append([row])
                continue
            # rows may share a worker: each loads its own model, and loading
            # sets the process-wide torch switches of its settings
            key = (row.index,) if isolate else (row.ranks,)
            groups.setdefault(key, []).append(row)
        ordered = sorted(groups.values(), key=lambda g: (g[0].engine != "raw", g[0].index))
        batches += (ordered + external) * rounds
    return batches


def pool_rounds(first: dict, later: dict) -> dict:
    """One row's record over two rounds: the repeats of both (medians and spread
    then span the rounds); the other figures of the first round. A failed round
    fails the row."""
    if first.get("status") != "ok":
        return first
    if later.get("status") != "ok":
        return later
    pooled = dict(first)
    pooled["repeat_ms"] = list(first["repeat_ms"]) + list(later["repeat_ms"])
    pooled["rounds"] = first.get("rounds", 1) + 1
    pooled["wall_s"] = first.get("wall_s", 0.0) + later.get("wall_s", 0.0)
    return pooled


# ---------------------------------------------------------------------- workers


def _worker_environment(threads: int) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    try:
        from mlipdrive import lammps

        # the mpich wheel's libmpi, for mpi4py under mpirun
        env = lammps.lmp_environment(env)
        env["OMP_NUM_THREADS"] = str(threads)
    except ImportError:
        pass
    return env


def _run_worker(group: List[Row], workdir: pathlib.Path, results: Dict[int, dict],
                progress: Progress):
    """Run in-process rows in one worker process, following its results file."""
    folder = workdir / "rows" / f"{group[0].index:03d}-worker"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.json").write_text(json.dumps([row.to_dict() for row in group]))
    results_path = folder / "results.jsonl"
    results_path.write_text("")  # a later round reuses the folder
    command = [sys.executable, "-m", "mlipdrive.bench.worker", "rows.json", "results.jsonl"]
    ranks = group[0].ranks
    if ranks > 1:
        command = [engines_module.executable("mpirun"), "-np", str(ranks)] + command
    by_index = {row.index: row for row in group}
    seen = [0]

    def follow():
        lines = results_path.read_text().splitlines()
        for line in lines[seen[0]:]:
            if not line.endswith("}"):
                break
            record = json.loads(line)
            seen[0] += 1
            row = by_index[record["index"]]
            results[row.index] = record
            progress.done(row.label, _short(record))
            pending = [r for r in group if r.index not in results]
            if pending:
                progress.start(pending[0].label)

    progress.start(group[0].label)
    timeout = sum(row.timeout_s for row in group)
    outcome = run_process(command, cwd=folder, env=_worker_environment(group[0].threads),
                          stdout_path=folder / "stdout.txt", timeout=timeout, poll=follow)
    follow()
    for row in group:
        if row.index not in results:
            why = "timed out" if outcome.timed_out else f"exited with code {outcome.returncode}"
            results[row.index] = {
                "status": "failed",
                "error": f"worker {why} before this row finished:\n"
                + tail(folder / "stdout.txt", 15),
            }
            progress.done(row.label, "failed")


# ---------------------------------------------------------------------- external


def _run_external(row: Row, rows: List[Row], results: Dict[int, dict],
                  workdir: pathlib.Path, progress: Progress):
    folder = workdir / "rows" / f"{row.index:03d}-{row.engine}"
    folder.mkdir(parents=True, exist_ok=True)
    estimate = _estimate_ms(row, rows, results)
    if row.steps <= 0:
        wanted = int(row.budget_s * 1e3 / max(estimate, 1e-3)) + 1
        row.steps = max(5, min(wanted, row.max_steps))
    progress.start(f"{row.label} ({row.steps} steps x {row.repeats})")
    started = time.monotonic()
    try:
        measured = engines_module.ENGINES[row.engine].runner()(row, folder)
        record = {"status": "ok", **measured}
    except Exception as error:  # noqa: BLE001 -- recorded; the next row runs
        record = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    record["wall_s"] = time.monotonic() - started
    record["steps_estimate_ms"] = estimate
    results[row.index] = record
    progress.done(row.label, _short(record))


def _estimate_ms(row: Row, rows: List[Row], results: Dict[int, dict]) -> float:
    """Expected ms/step of ``row`` from rows already measured: the floor of the
    same model, atoms and settings (or any settings), else an in-process row
    of the same model scaled by the atom count; a guess otherwise."""
    done = [(r, results[r.index]) for r in rows
            if r.index in results and results[r.index].get("status") == "ok"
            and results[r.index].get("repeat_ms")]

    def median(record):
        values = sorted(record["repeat_ms"])
        return values[len(values) // 2]

    for same_settings in (True, False):
        for r, record in done:
            if (r.model == row.model and r.atoms == row.atoms and r.engine == "raw"
                    and (r.settings == row.settings or not same_settings)):
                return median(record)
    same_model = [(r, record) for r, record in done if r.model == row.model]
    if same_model:
        r, record = min(same_model, key=lambda item: abs(item[0].atoms - row.atoms))
        return median(record) * row.atoms / r.atoms
    return 1.0 + 0.05 * row.atoms


# ---------------------------------------------------------------------- results


def _short(record: dict) -> str:
    if record.get("status") != "ok":
        return record.get("status", "?") + (": " + record["error"].splitlines()[0]
                                            if record.get("error") else "")
    values = sorted(record["repeat_ms"])
    return f"{values[len(values) // 2]:.3f} ms/step"


def _collect(row: Row, record: Optional[dict]) -> dict:
    """One row of the results: its spec, its engine and its figures."""
    engine = engines_module.ENGINES[row.engine]
    record = dict(record or {"status": "failed", "error": "never ran"})
    record.pop("index", None)
    result = {
        "engine": row.engine,
        "role": engine.role,
        "model": row.model,
        "system": row.system,
        "atoms": row.atoms,
        "settings": row.settings,
        "settings_values": row.settings_values,
        "ranks": row.ranks,
        "threads": row.threads,
        "device": row.device,
        "timestep_fs": row.timestep_fs,
        "temperature_k": row.temperature_k,
        "repeats": row.repeats,
        "warmup": row.warmup,
        "nve": engine.md,
        **record,
    }
    if record.get("status") == "ok":
        result.update(summary(record["repeat_ms"], row.atoms, row.timestep_fs))
    return result
