"""examples/lammps runs as its README says (a few steps here), serial and on two ranks."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from lammps_testing import LMP_TIMEOUT, LmpResult

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lammps"


@pytest.mark.parametrize("ranks", [1, 2])
def test_lammps_example(mace_model, ranks):
    env = dict(os.environ)
    env.pop("LAMMPS_PLUGIN_PATH", None)
    env["VENV"] = str(pathlib.Path(sys.executable).parent.parent)
    env["NP"] = str(ranks)
    process = subprocess.run(
        [str(EXAMPLE / "run.sh"), "-var", "steps", "10", "-log", "none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=LMP_TIMEOUT,
    )
    result = LmpResult(process.returncode, process.stdout + process.stderr)
    assert result.returncode == 0, result.output[-3000:]
    thermo = result.thermo()
    assert thermo["Step"][-1] == 10
    assert np.isfinite(thermo["TotEng"]).all()


def test_lammps_turbo_matches_default(mace_model):
    """`settings turbo` (float32 on a float64 model) runs and stays within 1e-4 eV/atom."""
    env = dict(os.environ)
    env["VENV"] = str(pathlib.Path(sys.executable).parent.parent)
    thermo = {}
    for settings in ("default", "turbo"):
        process = subprocess.run(
            [str(EXAMPLE / "run.sh"), "-var", "steps", "10", "-log", "none",
             "-var", "model", f"{mace_model} settings {settings}"],
            env=env, capture_output=True, text=True, timeout=LMP_TIMEOUT,
        )
        result = LmpResult(process.returncode, process.stdout + process.stderr)
        assert result.returncode == 0, result.output[-3000:]
        thermo[settings] = result.thermo()
    n_atoms = 108
    difference = np.abs(thermo["turbo"]["PotEng"] - thermo["default"]["PotEng"]) / n_atoms
    assert difference.max() < 1e-4


def test_lmp_uses_torch_blas_for_float64(mace_model):
    """liblammps.so exports a reference dgemm_: in the run.sh (make md) path, the
    float64 model's matrix products must bind to torch's own (LD_DEBUG shows it)."""
    env = dict(os.environ)
    env["VENV"] = str(pathlib.Path(sys.executable).parent.parent)
    env["LD_DEBUG"] = "bindings"
    process = subprocess.run(
        [str(EXAMPLE / "run.sh"), "-var", "steps", "2", "-log", "none",
         "-var", "model", f"{mace_model} dtype float64"],
        env=env, capture_output=True, text=True, timeout=LMP_TIMEOUT,
    )
    assert process.returncode == 0, process.stdout[-3000:]
    bindings = [line for line in process.stderr.splitlines()
                if "libtorch_cpu.so" in line.split(" to ")[0] and "`dgemm_'" in line]
    assert bindings, "torch never called dgemm_: the check saw nothing"
    assert all(" to " in line and "libtorch_cpu.so" in line.split(" to ")[1]
               for line in bindings), bindings
