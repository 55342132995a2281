"""Timing, memory and energy-drift measurements shared by the engines.

- :func:`summary` turns the ms/step of each repeat into the reported figures.
- :func:`reset_peak_rss` / :func:`peak_rss_mb`: peak resident memory of this
  process since the last reset (Linux ``clear_refs``), so that several rows can
  share one worker process.
- :func:`run_process`: a child process with a time limit, whose peak RSS
  (sampled over its process tree, :class:`TreeMemory`) is returned.
- :func:`drift`: the slope of the total energy per atom against time.
"""

import contextlib
import os
import resource
import signal
import statistics
import subprocess
import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np


def summary(block_ms: Sequence[float], atoms: int, timestep_fs: float) -> dict:
    """Reported figures from the mean ms/step of each repeat (block of steps).

    ``ms_per_step`` is the median over repeats; ``spread_ms`` their standard
    deviation (0 for one repeat); the rates derive from the median.
    """
    if not block_ms:
        raise ValueError("no measured repeats")
    median = statistics.median(block_ms)
    steps_per_s = 1000.0 / median
    return {
        "ms_per_step": median,
        "spread_ms": statistics.stdev(block_ms) if len(block_ms) > 1 else 0.0,
        "min_ms": min(block_ms),
        "max_ms": max(block_ms),
        "repeat_ms": list(block_ms),
        "steps_per_s": steps_per_s,
        # ns/day = steps/s × 86400 s/day × timestep (fs) × 1e-6 ns/fs
        "ns_per_day": steps_per_s * 86400.0 * timestep_fs * 1e-6,
        "atom_steps_per_s": steps_per_s * atoms,
    }


def drift(times_ps: Sequence[float], total_energy: Sequence[float], atoms: int) -> Optional[float]:
    """Energy drift in eV/atom/ps: least-squares slope of E_total / atoms
    against time (``total_energy`` in eV); None with fewer than 3 points."""
    if len(times_ps) != len(total_energy):
        raise ValueError("drift needs as many times as energies")
    # engines repeat the last point of a run as the first of the next: once each
    points = dict(zip((float(t) for t in times_ps), (float(e) for e in total_energy)))
    if len(points) < 3:
        return None
    times = np.fromiter(points.keys(), dtype=float)
    energy = np.fromiter(points.values(), dtype=float) / atoms
    return float(np.polyfit(times, energy, 1)[0])


class PhaseTimer:
    """Seconds accumulated per phase name: ``with timer('forward'): ...``."""

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start

    def reset(self):
        self.seconds.clear()


def per_step_ms(seconds: Dict[str, float], steps: int) -> Dict[str, float]:
    """Seconds per phase over ``steps`` steps as ms/step, without empty phases."""
    return {phase: 1e3 * value / steps for phase, value in seconds.items() if value > 0}


# ---------------------------------------------------------------------- memory

_CLEAR_REFS = "/proc/self/clear_refs"


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0).
    Returns False where that is not possible (the peak then covers the process's
    whole life)."""
    try:
        with open(_CLEAR_REFS, "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process (since :func:`reset_peak_rss`), MiB."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------- processes


class TreeMemory:
    """Peak memory of a process and its descendants, sampled from /proc.

    ``VmHWM`` (a process's own peak RSS) is read for every process of the
    tree at each :meth:`sample`; it only grows, so the last sample before a
    process exits is close to its true peak. (``wait4``'s ``ru_maxrss`` cannot
    be used: Linux carries the parent's peak across fork and exec, so every
    child of a harness that loaded torch would report torch's memory.)
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_mb = 0.0  # largest VmHWM of one process

    def sample(self):
        for pid in _descendants(self.pid):
            self.peak_mb = max(self.peak_mb, _peak_rss(pid))


def _descendants(pid: int) -> List[int]:
    """``pid`` and every process below it (/proc/PID/task/TID/children)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as file:
                    stack.extend(int(child) for child in file.read().split())
            except OSError:
                continue
    return found


def _peak_rss(pid: int) -> float:
    """VmHWM (peak resident memory) of ``pid`` in MiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return 0.0


class ProcessResult:
    """What :func:`wait_process` saw: exit code, peak RSS of the largest process
    of the tree (MiB), wall seconds, and whether the time limit killed it."""

    def __init__(self, returncode: int, memory: "TreeMemory", wall_s: float, timed_out: bool):
        self.returncode = returncode
        self.peak_rss_mb = memory.peak_mb
        self.wall_s = wall_s
        self.timed_out = timed_out


def start_process(command: List[str], *, cwd, env, stdout_path,
                  stderr_path=None) -> subprocess.Popen:
    """Start ``command`` in its own process group, output into files."""
    stdout = open(stdout_path, "wb")
    stderr = subprocess.STDOUT if stderr_path is None else open(stderr_path, "wb")
    try:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    finally:
        stdout.close()
        if stderr is not subprocess.STDOUT:
            stderr.close()


def wait_process(process: subprocess.Popen, deadline: float, poll=None,
                 sample_every: float = 0.05) -> ProcessResult:
    """Wait for ``process`` until ``deadline`` (time.monotonic()), then kill its
    whole group. ``poll()`` is called while waiting (progress, other processes);
    memory is sampled every ``sample_every`` seconds (see :class:`TreeMemory`).
    """
    start = time.monotonic()
    memory = TreeMemory(process.pid)
    next_sample = start
    timed_out = False
    while True:
        now = time.monotonic()
        if now >= next_sample:
            memory.sample()
            next_sample = now + sample_every
        pid, status = os.waitpid(process.pid, os.WNOHANG)
        if pid != 0:
            break
        if now > deadline:
            timed_out = True
            kill_group(process)
            pid, status = os.waitpid(process.pid, 0)
            break
        if poll is not None:
            poll()
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code  # tell Popen it was reaped
    return ProcessResult(code, memory, time.monotonic() - start, timed_out)


def kill_group(process: subprocess.Popen, grace: float = 2.0):
    """SIGTERM the process group of ``process``, SIGKILL what is left after
    ``grace`` seconds. Does not reap ``process`` (its caller does)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        # WNOWAIT: look without reaping
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def run_process(command: List[str], *, cwd, env, stdout_path, timeout: float,
                stderr_path=None, poll=None) -> ProcessResult:
    """Run ``command`` to completion or until ``timeout`` seconds."""
    process = start_process(command, cwd=cwd, env=env, stdout_path=stdout_path,
                            stderr_path=stderr_path)
    return wait_process(process, time.monotonic() + timeout, poll=poll)


def tail(path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
