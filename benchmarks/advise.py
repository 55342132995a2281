"""``mlipdrive advise MODEL [STRUCTURE]``: which MPI ranks x torch threads x
settings to run a model with, measured on this machine.

::

    mlipdrive advise mace                          # the shipped MACE, ~1000 CuAl atoms
    mlipdrive advise my_model.pt system.xyz        # your model on your system
    mlipdrive advise lj --atoms 4000 --check       # then re-measure, longer, to check
    mlipdrive advise --render advise.json          # the report again from its JSON

Short runs of every layout (ranks x threads filling the cores, and 1 x 1) and
every settings preset, through LAMMPS (``pair_style mlipdrive``) and i-PI (our
client ``mlipdrive ipi``), with the raw model cost as the floor; the threads
each process really computed with are read from /proc. Then, for each engine:
the measured table (ms/step, ns/day), the best option, the exact command
lines, and when more ranks would start to pay: the size at which the ghost
shell (interaction range + skin) is cheap enough, from the measured costs and
the shell's geometry. Writes OUTPUT/advise.json and OUTPUT/advise.md and
prints the latter.
"""
# (this docstring is the command's --help; the ghost shell's geometry is in ghosts.py)

import argparse
import dataclasses
import os
import pathlib
import re
import shlex
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

#: engines advised on, each with the processes that do its model's work
ENGINES = ("lammps", "ipi")
SCHEMA = "mlipdrive-advise/1"


def add_parser(subparsers):
    """``mlipdrive advise``."""
    parser = subparsers.add_parser(
        "advise", help="measure ranks x threads x settings for a model and system, "
        "and recommend how to run it in LAMMPS and i-PI",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(parser)


def configure(parser: argparse.ArgumentParser):
    """The options of ``mlipdrive advise`` (also ``mlipdrive bench advise``)."""
    parser.add_argument("model", nargs="?", help="'mace' (the shipped model), 'lj' (exact "
                        "LJ argon) or an exported .pt file")
    parser.add_argument("structure", nargs="?", default=None,
                        help="the system (any format ASE reads; default: the harness's "
                        "system for the model, fcc argon for lj, a CuAl alloy otherwise)")
    parser.add_argument("--atoms", type=int, default=None, metavar="N",
                        help="replicate the structure to about N atoms (default: the "
                        "structure as given; 1000 without one)")
    parser.add_argument("--cores", type=int, default=None,
                        help="cores to plan for (default: the usable cores here)")
    parser.add_argument("--layouts", nargs="+", default=None, metavar="RxT",
                        help="ranks x threads to measure, e.g. 1x1 1x2 2x1 (default: 1x1 "
                        "and every RxT with R*T = cores)")
    parser.add_argument("--settings", nargs="+", default=["default", "turbo"],
                        help="presets or KEY=VALUE sets, as in mlipdrive bench")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--budget", type=float, default=1.0, metavar="S",
                        help="seconds per timed repeat (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (default 3)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (default 5)")
    parser.add_argument("--timestep", type=float, default=1.0, metavar="FS",
                        help="MD timestep for ns/day (default 1 fs)")
    parser.add_argument("--check", action="store_true",
                        help="then measure every layout again with the recommended "
                        "settings, 3x longer in 2 interleaved rounds, and say whether "
                        "the recommendation is still the best")
    parser.add_argument("--output", default="advise-results", metavar="DIR",
                        help="folder for advise.json and advise.md (default ./advise-results)")
    parser.add_argument("--keep-work", action="store_true", help="keep every run's files")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--render", metavar="JSON", help="the report again from an advise.json")
    parser.set_defaults(func=run)


@dataclasses.dataclass
class Plan:
    """What ``advise`` measures."""

    model: str
    structure: Optional[str]
    atoms: int
    layouts: List[Tuple[int, int]]  # (ranks, threads)
    settings: List[str]
    engines: List[str]
    cores: int
    budget_s: float = 1.0
    repeats: int = 3
    warmup: int = 5
    timestep_fs: float = 1.0


def usable_cores() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def default_layouts(cores: int) -> List[Tuple[int, int]]:
    """1 x 1, then every ranks x threads that fills ``cores`` (ranks first)."""
    layouts = [(1, 1)]
    for ranks in range(1, cores + 1):
        if cores % ranks == 0 and (ranks, cores // ranks) not in layouts:
            layouts.append((ranks, cores // ranks))
    return layouts


def parse_layout(text: str) -> Tuple[int, int]:
    ranks, sep, threads = text.lower().partition("x")
    if not sep or not ranks.isdigit() or not threads.isdigit() or "0" in (ranks, threads):
        raise ValueError(f"a layout is RANKSxTHREADS such as 2x1, got '{text}'")
    return int(ranks), int(threads)


def plan_from_arguments(args) -> Plan:
    if args.model is None:
        raise ValueError("give a MODEL ('mace', 'lj' or a .pt file), or --render JSON")
    cores = args.cores or usable_cores()
    layouts = ([parse_layout(t) for t in args.layouts] if args.layouts
               else default_layouts(cores))
    atoms = args.atoms
    if atoms is None:
        atoms = _structure_atoms(args.structure) if args.structure else 1000
    if atoms < 1 or args.budget <= 0 or args.repeats < 1 or args.warmup < 0:
        raise ValueError("--atoms, --budget and --repeats must be positive, --warmup >= 0")
    return Plan(args.model, args.structure, atoms, layouts, list(args.settings),
                list(args.engines), cores, args.budget, args.repeats, args.warmup,
                args.timestep)


def _structure_atoms(path: str) -> int:
    from mlipdrive._structure import read_structure

    return len(read_structure(path))


# ---------------------------------------------------------------------- measuring


def measure(plan: Plan, workdir: pathlib.Path, *, rounds: int = 1, budget_scale: float = 1.0,
            settings: Optional[List[str]] = None,
            progress: bool = True) -> Tuple[List[dict], dict, dict]:
    """Run every layout of ``plan`` (with these settings, ``budget_scale`` x the
    time per repeat): (rows, model, system facts). One harness run per thread
    count (its ranks in one go), each row with the threads seen per process."""
    from .progress import Progress
    from .runner import Options
    from .runner import run as run_matrix
    from .threads_seen import ThreadWatch

    rows: List[dict] = []
    model: dict = {}
    system: dict = {}
    by_threads: Dict[int, List[int]] = {}
    for ranks, threads in plan.layouts:
        by_threads.setdefault(threads, []).append(ranks)
    for threads, ranks in sorted(by_threads.items()):
        options = Options(
            # the raw model cost first: the floor, and what sets the steps per repeat
            models=(plan.model,), engines=("raw", *plan.engines),
            sizes=(plan.atoms,), settings=tuple(settings or plan.settings),
            ranks=tuple(sorted(ranks)), threads=threads, structure=plan.structure,
            budget_s=plan.budget_s * budget_scale, repeats=plan.repeats, warmup=plan.warmup,
            timestep_fs=plan.timestep_fs, rounds=rounds, max_steps=100000,
        )
        folder = workdir / f"threads-{threads}"
        with ThreadWatch() as watch:
            result = run_matrix(options, progress=Progress(0, enabled=progress), workdir=folder)
        if not model:
            model = model_facts(result["models"][0])
            structure = next(folder.glob("systems/*/system.extxyz"))
            system = system_facts(structure, result["models"][0]["atomic_types"])
        for index, row in enumerate(result["rows"]):
            row["threads_seen"] = threads_seen(watch, folder, index, row["engine"])
            if row["ranks"] > 1:
                row["ghosts_per_rank"] = ghosts_per_rank(
                    row, row_folder(folder, index, row["engine"]), structure, model
                )
            rows.append(row)
    return rows, model, system


def row_folder(workdir: pathlib.Path, index: int, engine: str) -> pathlib.Path:
    """Where :mod:`mlipdrive.bench.runner` runs row ``index`` (isolated workers)."""
    from .engines import ENGINES

    suffix = "worker" if ENGINES[engine].in_process else engine
    return workdir / "rows" / f"{index:03d}-{suffix}"


def threads_seen(watch, workdir: pathlib.Path, index: int, engine: str) -> List[int]:
    """Busy threads of each process that ran the model for this row (one per rank)."""
    processes = watch.under(str(row_folder(workdir, index, engine)))
    return [p.busy for p in processes if _runs_model(p, engine)]


def ghosts_per_rank(row: dict, folder: pathlib.Path, structure: pathlib.Path,
                    model: dict) -> Optional[float]:
    """Ghost atoms per rank that the model sees: the plugin's count on rank 0
    (its 'System on rank 0: L local + G ghost atom(s)' line), or the domains of
    our i-PI client (:mod:`mlipdrive.halo` on the same structure)."""
    if row["engine"] == "lammps":
        log = folder / "log.lammps"
        if not log.exists():
            return None
        found = re.findall(r"System on rank 0: \d+ local \+ (\d+) ghost", log.read_text())
        return float(found[0]) if found else None
    if row["engine"] == "ipi":
        from mlipdrive._structure import read_structure
        from mlipdrive.halo import Decomposition

        atoms = read_structure(str(structure))
        split = Decomposition(atoms.positions, atoms.cell.array, atoms.pbc, row["ranks"],
                              model["shell"]["ipi"])
        return sum(split.domain(r).n_ghosts for r in range(row["ranks"])) / row["ranks"]
    return None


def _runs_model(process, engine: str) -> bool:
    program = pathlib.Path(process.command[0]).name if process.command else ""
    if engine in ("lammps", "lammps-lj"):
        return program == "lmp"
    if engine == "ipi":
        return any(pathlib.Path(p).name == "mlipdrive" for p in process.command[:2]) and \
            "ipi" in process.command
    return process.runs("mlipdrive.bench.worker")


def model_facts(model: dict) -> dict:
    """Interaction range, cutoff and the skins that set each engine's ghost shell."""
    import mlipdrive
    from mlipdrive.neighbors import PAIR_SORT_MARGIN, prunes_ghost_pairs
    from mlipdrive.settings import InferenceSettings

    potential = mlipdrive.load(model["path"], settings={"threads": 1})
    skin = InferenceSettings.from_strings("default").skin
    interaction_range = float(potential.interaction_range)
    cutoff = float(max(potential.cutoffs, default=0.0))
    within_reach = bool(prunes_ghost_pairs(interaction_range, cutoff))
    return {
        "label": model["label"],
        "path": model["path"],
        "interaction_range": interaction_range,
        "cutoff": cutoff,
        # LAMMPS: its default neighbor skin in metal units (the harness's input),
        # or for a model whose range is its cutoff the plugin's reach (its
        # ghosts out of every local atom's reach left out); i-PI client: the
        # settings' Verlet skin
        "shell": {"lammps": cutoff * (1.0 + PAIR_SORT_MARGIN) if within_reach
                  else interaction_range + LAMMPS_SKIN,
                  "ipi": interaction_range + skin},
        "lammps_within_reach": within_reach,
    }


#: Å: LAMMPS's default neighbour skin in metal units (the harness's inputs keep it)
LAMMPS_SKIN = 2.0


def user_type_order(path: Optional[str]) -> Optional[List[str]]:
    """The elements of LAMMPS atom types 1, 2, ... where the user's structure
    carries them (ASE reads a LAMMPS data file with each atom's 'type'); None
    otherwise, or when a type in between has no atom."""
    from mlipdrive._structure import StructureError, read_structure

    if not path:
        return None
    try:
        atoms = read_structure(path)
    except StructureError:
        return None
    if "type" not in atoms.arrays:
        return None
    symbols: Dict[int, str] = {}
    for kind, symbol in zip(atoms.arrays["type"].tolist(), atoms.get_chemical_symbols()):
        symbols.setdefault(int(kind), symbol)
    if sorted(symbols) != list(range(1, len(symbols) + 1)):
        return None
    return [symbols[kind] for kind in sorted(symbols)]


def system_facts(path: pathlib.Path, atomic_types: List[int]) -> dict:
    """Atoms, box edge lengths (plane spacings) and species (in the order of
    the LAMMPS atom types: the model's) of the measured system."""
    import numpy as np

    from mlipdrive._structure import read_structure

    from .systems import species

    atoms = read_structure(str(path))
    cell = atoms.cell.array
    volume = abs(float(np.linalg.det(cell)))
    spacing = [volume / float(np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])))
               for i in range(3)]
    return {"atoms": len(atoms), "lengths": spacing,
            "species": species(atoms, atomic_types)}


# ---------------------------------------------------------------------- command


def run(args) -> int:
    import json

    from . import environment
    from .advise_report import markdown, write

    output = pathlib.Path(args.output)
    if args.render:
        record = json.loads(pathlib.Path(args.render).read_text())
        code = write(record, output, write_json=False)
        print(markdown(record))
        return code
    plan = plan_from_arguments(args)
    work = (output / "work" if args.keep_work
            else pathlib.Path(tempfile.mkdtemp(prefix="mlipdrive-advise-")))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    record = environment.start_record(
        SCHEMA, "mlipdrive " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        plan=dataclasses.asdict(plan),
    )
    try:
        rows, record["model"], record["system"] = measure(
            plan, work / "measure", progress=not args.no_progress
        )
        # the measured data file has the model's type order; the user's may differ
        record["system"]["type_order"] = user_type_order(plan.structure)
        record["rows"] = rows
        if args.check:
            from .advise_report import recommended_settings

            chosen = sorted(set(recommended_settings(record).values()))
            record["check_rows"], _, _ = measure(
                plan, work / "check", rounds=2, budget_scale=3.0, settings=chosen,
                progress=not args.no_progress,
            )
    finally:
        if not args.keep_work:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    environment.finish_record(record)
    code = write(record, output, write_json=True)
    print(markdown(record))
    failed = [r for r in rows if r.get("status") != "ok"]
    return 1 if failed else code
