"""The threads each process of a run really computed with, seen from ``/proc``.

A setting such as ``threads 2`` is honoured when the process then computes on
two threads, whatever it prints. :class:`ThreadWatch` samples, in the
background, the CPU time of every thread of every process below a root
process (``/proc/PID/task/TID/stat``), with each process's command line and
working folder (which tells the benchmark row it belongs to).
:func:`busy_threads` then counts the threads that did a real share of a
process's work: torch's intra-op pool (OpenMP) only exists and only burns CPU
when torch was told to use more than one thread.

Linux only (``/proc``); elsewhere nothing is seen and the counts are None.
"""

import dataclasses
import os
import threading
from typing import Dict, List, Optional

from .measure import _descendants

#: a thread is busy when it used at least this share of the busiest thread's CPU time
BUSY_SHARE = 0.2

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclasses.dataclass
class SeenProcess:
    """One process as last sampled."""

    pid: int
    command: List[str]
    cwd: str
    #: the parent's pid (0 when unknown)
    ppid: int = 0
    #: CPU seconds (user + system) of each thread, by thread id
    thread_cpu_s: Dict[int, float] = dataclasses.field(default_factory=dict)

    @property
    def busy(self) -> int:
        return busy_threads(self.thread_cpu_s)

    def runs(self, *words: str) -> bool:
        """True when the command line has every word (as a part of an argument)."""
        return all(any(word in part for part in self.command) for word in words)


def busy_threads(thread_cpu_s: Dict[int, float], share: float = BUSY_SHARE) -> int:
    """Threads that used at least ``share`` of the busiest thread's CPU time."""
    if not thread_cpu_s:
        return 0
    top = max(thread_cpu_s.values())
    if top <= 0.0:
        return 0
    return sum(1 for value in thread_cpu_s.values() if value >= share * top)


class ThreadWatch:
    """Samples every ``every`` seconds the processes below ``root`` (default:
    this process), in a background thread: ``with ThreadWatch() as watch: ...``,
    then :attr:`processes`."""

    def __init__(self, root: Optional[int] = None, every: float = 0.2):
        self.root = os.getpid() if root is None else root
        self.every = every
        self.processes: Dict[int, SeenProcess] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ThreadWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self):
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self):
        for pid in _descendants(self.root):
            if pid == self.root:
                continue
            # described again at every sample: a child seen between fork and
            # exec still has its parent's command line and folder
            seen = _describe(pid)
            if seen is None:
                continue
            earlier = self.processes.get(pid)
            if earlier is not None and earlier.command == seen.command:
                seen.thread_cpu_s = earlier.thread_cpu_s
            seen.thread_cpu_s.update(_thread_cpu(pid))
            self.processes[pid] = seen

    def under(self, folder: str) -> List[SeenProcess]:
        """The processes that ran in ``folder`` (their working directory), less
        the forks of one of them seen before they ran a program of their own
        (a child between fork and exec still shows its parent's command line)."""
        folder = os.path.realpath(folder)
        return [p for p in self.processes.values()
                if p.cwd == folder and not self._is_fork(p)]

    def _is_fork(self, process: SeenProcess) -> bool:
        parent = self.processes.get(process.ppid)
        return parent is not None and parent.command == process.command


def _describe(pid: int) -> Optional[SeenProcess]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = [part.decode(errors="replace") for part in file.read().split(b"\0") if part]
        cwd = os.readlink(f"/proc/{pid}/cwd")
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return None
    if not command:
        return None  # a zombie: its threads are gone, its last sample stays
    ppid = int(_stat_fields(stat)[1])  # after the state
    return SeenProcess(pid, command, cwd, ppid)


def _stat_fields(text: str) -> List[str]:
    """The fields of a ``/proc/.../stat`` line after the command name (field 2,
    which may hold spaces: split after its ')'): state, ppid, ..."""
    return text[text.rindex(")") + 2:].split()


def _thread_cpu(pid: int) -> Dict[int, float]:
    """CPU seconds of each live thread of ``pid``."""
    values = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return values
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as file:
                text = file.read()
        except OSError:
            continue
        fields = _stat_fields(text)
        # fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name
        values[int(task)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return values

