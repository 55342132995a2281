"""examples/ipi runs as its README says, a few steps, and leaves nothing behind."""

import os
import pathlib
import subprocess
import sys

import numpy as np

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "ipi"


def sockets():
    return set(pathlib.Path("/tmp").glob("ipi_mlipdrive-example-*"))


def test_example_runs_and_stops_cleanly(mace_model, tmp_path):
    environment = dict(os.environ, STEPS="2", WORKDIR=str(tmp_path), MODEL=str(mace_model),
                       OMP_NUM_THREADS="1")
    # the venv's i-pi and mlipdrive first on PATH, as after 'source .venv/bin/activate'
    environment["PATH"] = f"{pathlib.Path(sys.executable).parent}:{environment['PATH']}"
    before = sockets()
    result = subprocess.run([str(EXAMPLE / "run.sh")], env=environment, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: 2 steps" in result.stdout
    properties = np.loadtxt(tmp_path / "simulation.out", ndmin=2)
    assert properties[:, 0].tolist() == [0.0]  # stride 10: step 0 only
    assert np.isfinite(properties).all()
    assert sockets() <= before, "the example left its socket file behind"
