"""Our ASE calculator, ``mlipdrive.ase.MLIPCalculator``, in ASE's VelocityVerlet."""

import pathlib

from ..matrix import Row
from ..measure import per_step_ms
from . import _ase_md, _common


def run(row: Row, workdir: pathlib.Path) -> dict:
    import ase.io

    from mlipdrive.ase import MLIPCalculator

    potential = _common.load_potential(row)
    atoms = ase.io.read(row.structure, parallel=False)
    result = _ase_md.run_verlet(
        row, atoms, MLIPCalculator(potential), on_warm=potential.timings.clear
    )
    step = sum(result["repeat_ms"]) / len(result["repeat_ms"])
    calculator = result.pop("calculator_ms")
    # the core's phases (neighbors, forward, backward); the rest of the
    # calculator is our glue, the rest of the step is ASE's integrator
    split = per_step_ms(dict(potential.timings), result["measured_steps"])
    split["driver"] = max(calculator - sum(split.values()), 0.0)
    split["engine"] = max(step - calculator, 0.0)
    result["split_ms"] = split
    result["gpu_memory_mb"] = _common.gpu_memory_mb(row.device)
    result["notes"] = []
    return result
