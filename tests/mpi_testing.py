"""Running the check scripts of tests/mpi_scripts/ under the environment's real mpirun."""

import json
import os
import pathlib
import subprocess
import sys
from typing import Iterable, Optional, Tuple

import pytest

MPIRUN = pathlib.Path(sys.executable).parent / "mpirun"
SCRIPTS = pathlib.Path(__file__).parent / "mpi_scripts"


def run_check_script(script: str, n_ranks: int, models: Iterable[Tuple[str, object, Optional[object]]],
                     out: pathlib.Path, *, timeout: float, abort_on_exception: bool = False) -> dict:
    """``mpirun -np N python SCRIPT OUT KIND:PATH[:EXTENSIONS]...``; the JSON report
    it writes to ``out``. ``models``: (kind, path, extensions directory or None).
    ``abort_on_exception`` runs the script through ``python -m mpi4py``, which
    aborts the whole job when a rank raises."""
    if not MPIRUN.exists():
        pytest.skip(f"no mpirun next to {sys.executable}; pip install mpich")
    python = [sys.executable, "-m", "mpi4py"] if abort_on_exception else [sys.executable]
    command = [str(MPIRUN), "-np", str(n_ranks), *python, str(SCRIPTS / script), str(out)]
    for kind, path, extensions in models:
        command.append(f"{kind}:{path}" + (f":{extensions}" if extensions else ""))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert process.returncode == 0, process.stdout + process.stderr
    return json.loads(out.read_text())
