"""What a LAMMPS executable or a plugin library links: its MPI, its C++ ABI.

Used by ``mlipdrive build-plugin`` (the plugin must use the MPI of the LAMMPS it
is built for) and ``mlipdrive doctor``. Standard library only; reads ``ldd`` and
``nm`` output, so nothing of the inspected files runs.
"""

import os
import pathlib
import re
import subprocess
from typing import Dict, Mapping, Optional

# MPI libraries by soname: the ABI a process gets, whatever its version
MPI_SONAMES = {
    "libmpi.so.40": "OpenMPI",
    "libmpich.so.12": "MPICH",
    "libmpi.so.12": "MPICH ABI (mpich wheel, Intel MPI, MVAPICH)",
}


def linked_libraries(path, env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """{soname: resolved path, or 'not found'} of every library ``path`` loads."""
    try:
        output = subprocess.run(
            ["ldd", str(path)], capture_output=True, text=True, timeout=60,
            env=dict(os.environ if env is None else env),
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    libraries = {}
    for line in output.splitlines():
        match = re.match(r"\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$", line)
        if match:
            libraries[match.group(1)] = match.group(2).strip()
    return libraries


def mpi_flavour(path, env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """'OpenMPI', 'MPICH', ... of the MPI library ``path`` links, or None."""
    for soname in linked_libraries(path, env):
        if soname in MPI_SONAMES:
            return MPI_SONAMES[soname]
    return None


def exported_symbols(path) -> set:
    """The dynamic symbols ``path`` defines (``nm -D --defined-only``)."""
    try:
        output = subprocess.run(
            ["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.split()[-1] for line in output.splitlines() if line.strip()}


def uses_cxx11_abi(path) -> Optional[bool]:
    """Whether ``path`` was built with libstdc++'s C++11 ABI (``__cxx11`` in its
    std::string symbols; torch 2.13 wheels use it); None if it has no such symbol."""
    symbols = exported_symbols(path)
    if any("__cxx11" in symbol for symbol in symbols):
        return True
    # the old ABI's std::string const& mangles as "RKSs"
    if any(symbol.startswith("_ZN9LAMMPS_NS") and "RKSs" in symbol for symbol in symbols):
        return False
    return None


def lammps_library(executable) -> Optional[pathlib.Path]:
    """The liblammps a LAMMPS executable loads (itself when it links LAMMPS statically)."""
    for soname, resolved in linked_libraries(executable).items():
        if soname.startswith("liblammps") and resolved.startswith("/"):
            return pathlib.Path(resolved)
    return pathlib.Path(executable)
