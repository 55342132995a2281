"""``mlipdrive bench``: run the MD benchmark matrix and write its report.

::

    mlipdrive bench                         # the default matrix (long: minutes to hours)
    mlipdrive bench --quick                 # CI smoke test, < 2 minutes on 2 cores
    mlipdrive bench --models mace --engines raw lammps --sizes 1000 8000 --ranks 1
    mlipdrive bench --settings default turbo "preset=turbo,dtype=float64"
    mlipdrive bench --list                  # the rows, and why some cannot run here
    mlipdrive bench --render bench.json     # markdown and plots again from a JSON

Writes OUTPUT/bench.json (everything), OUTPUT/bench.md (tables and targets) and
OUTPUT/{ms_per_step,turbo_speedup,rank_scaling}.png.
"""

import argparse
import json
import pathlib
import shlex
import sys



def add_parser(subparsers):
    from .runner import Options

    defaults = Options()
    parser = subparsers.add_parser(
        "bench", help="MD benchmark matrix: engines x sizes x settings x ranks x models",
        description=__doc__,
        epilog="Engines: " + _engine_list() + ". Timings are wall-clock; run on a quiet "
        "machine for numbers worth keeping.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to run")
    what.add_argument("--quick", action="store_true",
                      help="smoke test: LJ model, ~100 atoms, ranks 1 and 2, short repeats, "
                      "shared worker processes (< 2 minutes on 2 cores); other options "
                      "still apply")
    what.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                      help="'mace' (the shipped models/mace/mace-cual.pt), 'lj' (exact LJ "
                      "argon), 'lj-strict' (the same on a strict half list) or .pt files "
                      "(default: mace lj)")
    what.add_argument("--engines", nargs="+", default=None, metavar="ENGINE",
                      help="engines to run (default: all)")
    what.add_argument("--sizes", nargs="+", type=int, default=None, metavar="N",
                      help="approximate atom counts, by replicating a unit cell "
                      f"(default: {' '.join(map(str, defaults.sizes))})")
    what.add_argument("--settings", nargs="+", default=None, metavar="SET",
                      help="presets or KEY=VALUE[,KEY=VALUE] sets, e.g. "
                      "'preset=turbo,skin=0.5' (default: default turbo)")
    what.add_argument("--ranks", nargs="+", type=int, default=None, metavar="N",
                      help="MPI rank counts for the engines that use MPI (default: 1 2)")
    what.add_argument("--structure", default=None, metavar="FILE",
                      help="unit cell to replicate (any ASE format) instead of the "
                      "model's default (argon for LJ, CuAl for MACE)")
    _add_how(parser.add_argument_group("how"))
    _add_output(parser.add_argument_group("output"))
    parser.set_defaults(func=run)
    _add_modes(parser)


def _add_how(how):
    """How each row runs: beads, threads, device, steps, repeats, limits."""
    how.add_argument("--beads", type=int, default=None, metavar="P",
                     help="i-PI rows: path-integral beads (default 1)")
    how.add_argument("--threads", type=int, default=None,
                     help="torch threads per process or rank, in every engine (default 1)")
    how.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default cpu)")
    how.add_argument("--timestep", type=float, default=None, metavar="FS",
                     help="MD timestep in fs (default 1)")
    how.add_argument("--steps", type=int, default=None,
                     help="steps per repeat (default: as many as fit in --budget)")
    how.add_argument("--budget", type=float, default=None, metavar="S",
                     help="seconds per repeat when --steps is not given (default 2)")
    how.add_argument("--max-steps", type=int, default=None,
                     help="cap on the steps per repeat (default 2000)")
    how.add_argument("--repeats", type=int, default=None, help="timed repeats (default 3)")
    how.add_argument("--rounds", type=int, default=None,
                     help="run the rows of each model and size this many times in turn and "
                     "pool their repeats: fairer ratios on a noisy machine (default 1)")
    how.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5)")
    how.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="limit per row in seconds (default 1800; 60 with --quick)")
    how.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                     help="one process per in-process row (default: on, off with --quick)")


def _add_output(out):
    """Where results go and what is shown."""
    out.add_argument("--output", default="bench-results", metavar="DIR",
                     help="folder for bench.json, bench.md and the plots "
                     "(default: ./bench-results; the committed run is benchmarks/results)")
    out.add_argument("--keep-work", action="store_true",
                     help="keep the working folder (inputs and logs of every row)")
    out.add_argument("--no-progress", action="store_true", help="no progress display")
    out.add_argument("--list", action="store_true",
                     help="print the engines and rows that would run, then stop")
    out.add_argument("--render", metavar="JSON",
                     help="write bench.md and the plots from an existing bench.json")


def _add_modes(parser):
    """Harness modes other than the matrix: ``mlipdrive bench MODE ...`` (their
    options follow the mode's name)."""
    from . import advise, soak

    modes = parser.add_subparsers(dest="mode", metavar="MODE",
                                  title="modes instead of the matrix")
    advise.configure(modes.add_parser(
        "advise", help="the same as mlipdrive advise: ranks x threads x settings measured "
        "for one model and system, with a recommendation per engine",
        description=advise.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ))
    soak.configure(modes.add_parser(
        "soak", help="long NVE runs through LAMMPS (restart midway) and i-PI (client "
        "replaced midway): step time, memory and energy every N steps",
        description=soak.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ))


def _engine_list() -> str:
    from .engines import ENGINES

    return ", ".join(f"{name} ({engine.role})" for name, engine in ENGINES.items())


def options_from_arguments(args):
    from .runner import Options

    given = {
        "models": args.models, "engines": args.engines, "sizes": args.sizes,
        "settings": args.settings, "ranks": args.ranks, "threads": args.threads,
        "device": args.device, "timestep_fs": args.timestep, "steps": args.steps,
        "budget_s": args.budget, "max_steps": args.max_steps, "repeats": args.repeats,
        "rounds": args.rounds, "beads": args.beads,
        "warmup": args.warmup, "timeout_s": args.timeout, "isolate": args.isolate,
        "structure": args.structure,
    }
    given = {key: value for key, value in given.items() if value is not None}
    for key in ("models", "engines", "sizes", "settings", "ranks"):
        if key in given:
            given[key] = tuple(given[key])
    options = Options.quick_defaults(**given) if args.quick else Options(**given)
    _check(options)
    return options


def _check(options):
    if any(n < 1 for n in options.sizes):
        raise ValueError(f"--sizes must be positive atom counts, got {list(options.sizes)}")
    if any(n < 1 for n in options.ranks):
        raise ValueError(f"--ranks must be >= 1, got {list(options.ranks)}")
    if options.beads < 1:
        raise ValueError(f"--beads must be >= 1, got {options.beads}")
    if options.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {options.threads}")
    if options.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {options.repeats}")
    if options.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {options.rounds}")
    if options.steps < 0 or options.warmup < 0:
        raise ValueError("--steps and --warmup must be >= 0")
    if options.timestep_fs <= 0:
        raise ValueError(f"--timestep must be > 0 fs, got {options.timestep_fs}")


def run(args) -> int:
    output = pathlib.Path(args.output)
    if args.render:
        from .report import targets

        record = json.loads(pathlib.Path(args.render).read_text())
        record["targets"] = targets(record)  # with this version's definitions
        return _write_reports(record, output, write_json=False)

    import dataclasses

    from . import environment, runner
    from .engines import ENGINES
    from .progress import Progress
    from .report import targets

    options = options_from_arguments(args)
    if args.list:
        return _list(options)

    record = environment.start_record(
        "mlipdrive-bench/1", "mlipdrive bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        options=dataclasses.asdict(options),
    )
    record["engines"] = {name: {"role": e.role, "description": e.description}
                         for name, e in ENGINES.items()}
    progress = Progress(0, enabled=not args.no_progress)
    output.mkdir(parents=True, exist_ok=True)
    work = output / "work" if args.keep_work else None
    result = runner.run(options, progress=progress, workdir=work, keep_work=args.keep_work)
    progress.close()
    environment.finish_record(record)
    record["wall_s"] = result["wall_s"]
    record["models"] = result["models"]
    record["rows"] = result["rows"]
    record["targets"] = targets(record)
    code = _write_reports(record, output, write_json=True)
    failed = [row for row in record["rows"] if row.get("status") == "failed"]
    for row in failed:
        print(f"mlipdrive bench: row failed: {row['engine']} {row['model']} {row['atoms']} "
              f"atoms {row['settings']} np={row['ranks']}: {row['error']}", file=sys.stderr)
    return 1 if failed else code


def _write_reports(record: dict, output: pathlib.Path, write_json: bool) -> int:
    from . import plots, report

    output.mkdir(parents=True, exist_ok=True)
    if write_json:
        report.write_json(record, output / "bench.json")
    (output / "bench.md").write_text(report.markdown(record))
    plots.write_all(record, output)
    written = ["bench.md"] + (["bench.json"] if write_json else []) + list(plots.FILES)
    print(f"mlipdrive bench: wrote {', '.join(written)} in {output}/")
    for target in record.get("targets") or []:
        met = {True: "met", False: "NOT met", None: "info"}[target["met"]]
        print(f"  {target['target']}: {target['value']:.3g} ({target['goal']}, {met})")
    return 0


def _list(options) -> int:
    import tempfile

    from . import runner
    from .engines import ENGINES

    print("engines:")
    for name, engine in ENGINES.items():
        reason = engine.unavailable()
        print(f"  {name:14} {engine.role:9} {'ok' if not reason else 'unavailable: ' + reason}")
    with tempfile.TemporaryDirectory() as scratch:
        _models, _systems, rows, skipped = runner.prepare(
            options, pathlib.Path(scratch).resolve()
        )
    print(f"{len(rows)} rows ({len(rows) - len(skipped)} runnable):")
    for row in rows:
        note = f"  [skipped: {skipped[row.index]}]" if row.index in skipped else ""
        print(f"  {row.index:3d} {row.label}{note}")
    return 0
