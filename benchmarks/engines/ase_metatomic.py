"""Reference: metatomic's own ASE calculator, ``metatomic_ase.MetatomicCalculator``,
in ASE's VelocityVerlet, with its defaults (the model as exported, no
consistency checks) and the row's device and thread count."""

import pathlib

from ..matrix import Row
from . import _ase_md, _common


def run(row: Row, workdir: pathlib.Path) -> dict:
    import ase.io
    from metatomic_ase import MetatomicCalculator

    _common.set_threads(row)  # also resets torch's switches to its defaults
    _common.reset_gpu_memory(row.device)
    calculator = MetatomicCalculator(row.model_path, device=row.device,
                                     check_consistency=False)
    atoms = ase.io.read(row.structure, parallel=False)
    result = _ase_md.run_verlet(row, atoms, calculator)
    step = sum(result["repeat_ms"]) / len(result["repeat_ms"])
    calculator_ms = result.pop("calculator_ms")
    # metatomic's calculator reports no phases: its whole calculate() is 'model'
    # (neighbour search, System, forward, backward) and the rest is ASE's
    result["split_ms"] = {"model": calculator_ms, "engine": max(step - calculator_ms, 0.0)}
    result["gpu_memory_mb"] = _common.gpu_memory_mb(row.device)
    result["notes"] = []
    return result
