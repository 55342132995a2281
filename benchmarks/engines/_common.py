"""Pieces shared by the in-process engines: threads, step counts, timed loops."""

import math
import time
from typing import Callable, Dict, List, Optional

from ..matrix import Row


def set_threads(row: Row):
    """Torch intra-op threads for this row (also inter-op, once per process),
    and torch's default switches (loading the model applies the row's own)."""
    import torch

    torch_defaults()
    torch.set_num_threads(row.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # only settable before the first parallel work; harmless


def load_potential(row: Row):
    """The row's model through ``mlipdrive.load`` with its settings, on a worker
    set up for the row (threads, torch's switches, GPU memory counter)."""
    import mlipdrive

    set_threads(row)
    reset_gpu_memory(row.device)
    return mlipdrive.load(row.model_path, settings=row.settings_for_load(), device=row.device)


def torch_defaults():
    """Torch's own process-wide switches, for rows that run a model as exported
    in a worker where another row may have changed them (graph executor,
    fusion strategy)."""
    import torch

    torch._C._set_graph_executor_optimize(True)
    torch.jit.set_fusion_strategy([("STATIC", 2), ("DYNAMIC", 10)])


def synchronize(device: str):
    """Wait for queued GPU work, so that wall-clock timers measure it."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def steps_for(row: Row, step_seconds: float) -> int:
    """Steps per repeat: as given, or what fills ``row.budget_s`` seconds at
    ``step_seconds`` per step (at least 5, at most ``row.max_steps``)."""
    if row.steps > 0:
        return row.steps
    wanted = math.ceil(row.budget_s / max(step_seconds, 1e-6))
    return int(min(max(wanted, 5), row.max_steps))


def timed_blocks(
    row: Row,
    run_steps: Callable[[int], None],
    *,
    on_warm: Optional[Callable[[], None]] = None,
) -> Dict:
    """Warm up with ``row.warmup`` single steps, then time ``row.repeats`` blocks.

    ``run_steps(n)`` advances the simulation by ``n`` steps. The steps per block
    come from the last warm-up step's duration when ``row.steps`` is 0.
    ``on_warm()`` runs between warm-up and measurement (reset counters there).
    Returns {'repeat_ms', 'steps', 'measured_steps'}.
    """
    last = 0.0
    for _ in range(max(row.warmup, 1)):
        start = time.perf_counter()
        run_steps(1)
        synchronize(row.device)
        last = time.perf_counter() - start
    steps = steps_for(row, last)
    if on_warm is not None:
        on_warm()
    repeat_ms: List[float] = []
    for _ in range(row.repeats):
        start = time.perf_counter()
        run_steps(steps)
        synchronize(row.device)
        repeat_ms.append(1e3 * (time.perf_counter() - start) / steps)
    return {"repeat_ms": repeat_ms, "steps": steps, "measured_steps": steps * row.repeats}


def step_loop(step: Callable[[int], None]) -> Callable[[int], None]:
    """``run_steps(n)`` for :func:`timed_blocks` from a one-step function
    ``step(index)`` (index counts every step taken, warm-up included)."""
    counter = [0]

    def run_steps(n: int):
        for _ in range(n):
            step(counter[0])
            counter[0] += 1

    return run_steps


def gpu_memory_mb(device: str) -> Optional[float]:
    """Peak GPU memory allocated by torch in this process (MiB), on CUDA."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def reset_gpu_memory(device: str):
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
