"""``mlipdrive bench soak``: long NVE runs that must stay healthy.

::

    mlipdrive bench soak                                # 1e5 steps of the shipped MACE, ~100 atoms, turbo
    mlipdrive bench soak --steps 2000 --every 200       # a short one
    mlipdrive bench soak --render soak.json             # the report again

Through LAMMPS (``write_restart``/``read_restart`` midway) and i-PI (our client
stopped and replaced midway), recording every ``--every`` steps the step time,
the resident memory of the process that holds the model and the total energy;
then memory growth, step-time flatness and energy drift. Writes OUTPUT/soak.json,
OUTPUT/soak.md and OUTPUT/soak.png. The engines run one after the other.
"""
# (this docstring is the command's --help; the runs are in soak_runs.py, the
# report in soak_report.py)

import argparse
import dataclasses
import json
import pathlib
import shlex
import shutil
import sys
import tempfile

ENGINES = ("lammps", "ipi")
SCHEMA = "mlipdrive-soak/1"


def configure(parser: argparse.ArgumentParser):
    """The options of ``mlipdrive bench soak``."""
    parser.add_argument("--model", default="mace",
                        help="'mace' (the shipped model, default), 'lj' or a .pt file")
    parser.add_argument("--structure", default=None,
                        help="unit cell to replicate (default: the harness's system of the model)")
    parser.add_argument("--atoms", type=int, default=100, help="about this many atoms (default 100)")
    parser.add_argument("--steps", type=int, default=100000, help="MD steps (default 1e5)")
    parser.add_argument("--every", type=int, default=1000,
                        help="steps between records (default 1000)")
    parser.add_argument("--settings", default="turbo",
                        help="preset or KEY=VALUE,... as in mlipdrive bench (default turbo)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--timestep", type=float, default=1.0, metavar="FS")
    parser.add_argument("--timeout", type=float, default=14400.0, metavar="S",
                        help="limit per engine (default 4 h)")
    parser.add_argument("--output", default="soak-results", metavar="DIR")
    parser.add_argument("--keep-work", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no line per record")
    parser.add_argument("--render", metavar="JSON", help="soak.md and soak.png from a soak.json")
    parser.set_defaults(func=run)


def prepare(args, workdir: pathlib.Path):
    """(model label, settings label, SoakSpec) for the arguments."""
    from . import models, systems
    from .matrix import parse_settings
    from .soak_runs import SoakSpec

    if args.steps < 2 * args.every or args.every < 1:
        raise ValueError(f"--steps ({args.steps}) must be at least twice --every ({args.every})")
    label, values = parse_settings(args.settings, args.threads)
    model = models.resolve(args.model, workdir, args.structure)
    if model.missing:
        raise ValueError(model.missing)
    atoms = systems.build(model.system, args.atoms)
    species = systems.species(atoms, model.atomic_types)
    structure = systems.write(atoms, workdir / "system", species)
    spec = SoakSpec(
        model_path=model.path, structure=str(structure), species=species, atoms=len(atoms),
        steps=args.steps, every=args.every, settings=values, threads=args.threads,
        timestep_fs=args.timestep, temperature_k=model.system.temperature_k,
        timeout_s=args.timeout,
    )
    return model.label, label, spec


def soak(spec, engines, workdir: pathlib.Path, quiet: bool = False) -> dict:
    """Run each engine's soak; {engine: {'status', 'records', 'events', 'blocks', 'summary'}}."""
    from .soak_report import block_times, summary
    from .soak_runs import run_ipi, run_lammps

    runners = {"lammps": run_lammps, "ipi": run_ipi}
    results = {}
    for engine in engines:
        folder = workdir / engine
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = runners[engine](spec, folder, on_record=None if quiet else _print_record)
            result["blocks"] = block_times(result["records"])
            result["summary"] = summary(result, spec.atoms)
            result["status"] = "ok"
        except Exception as error:  # noqa: BLE001 -- recorded; the next engine runs
            result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        results[engine] = result
    return results


def _print_record(engine: str, record: dict):
    print(f"soak {engine}: step {record['step']}, E_total {record['etotal_ev']:.6f} eV, "
          f"RSS {record['rss_mb'] or 0:.1f} MiB", file=sys.stderr, flush=True)


def run(args) -> int:
    from . import environment
    from .report import write_json
    from .soak_report import markdown, plot

    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    if args.render:
        record = json.loads(pathlib.Path(args.render).read_text())
    else:
        work = (output / "work" if args.keep_work
                else pathlib.Path(tempfile.mkdtemp(prefix="mlipdrive-soak-")))
        work.mkdir(parents=True, exist_ok=True)
        work = work.resolve()
        record = environment.start_record(
            SCHEMA, "mlipdrive " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        )
        try:
            record["model"], record["settings"], spec = prepare(args, work)
            record["spec"] = dataclasses.asdict(spec)
            record["runs"] = soak(spec, args.engines, work, quiet=args.quiet)
        finally:
            if not args.keep_work:
                shutil.rmtree(work, ignore_errors=True)
        environment.finish_record(record)
        write_json(record, output / "soak.json")
    (output / "soak.md").write_text(markdown(record))
    plot(record, output / "soak.png")
    print(markdown(record))
    print(f"mlipdrive bench soak: wrote soak.json, soak.md, soak.png in {output}/")
    return 0 if all(r.get("status") == "ok" for r in record["runs"].values()) else 1
