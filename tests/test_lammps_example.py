"""examples/lammps: turbo against default, and torch's BLAS in a plain lmp.

(The README's own commands, serial and on two ranks, run in tests/test_readme.py.)"""

import os
import pathlib
import subprocess
import sys

import numpy as np
from lammps_testing import LMP_TIMEOUT, LmpResult

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lammps"


BIN = pathlib.Path(sys.executable).parent


def run_example(command, extra_env=None):
    """``command`` in examples/lammps, as a user's shell runs it (no plugin path set)."""
    env = dict(os.environ)
    env.pop("LAMMPS_PLUGIN_PATH", None)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env or {})
    process = subprocess.run(
        command, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=LMP_TIMEOUT
    )
    return process, LmpResult(process.returncode, process.stdout + process.stderr)


def test_lammps_turbo_matches_default(mace_model):
    """`settings turbo` (float32 on a float64 model) runs and stays within 1e-4 eV/atom."""
    thermo = {}
    for settings in ("default", "turbo"):
        _, result = run_example(
            [str(BIN / "lmp"), "-in", "in.md", "-var", "steps", "10", "-log", "none",
             "-var", "model", f"{mace_model} settings {settings}"]
        )
        assert result.returncode == 0, result.output[-3000:]
        thermo[settings] = result.thermo()
    n_atoms = 108
    difference = np.abs(thermo["turbo"]["PotEng"] - thermo["default"]["PotEng"]) / n_atoms
    assert difference.max() < 1e-4


def test_plain_lmp_uses_torch_blas_for_float64(mace_model):
    """liblammps.so exports a reference dgemm_: in a plain `lmp -in in.md` (no
    LD_PRELOAD, no wrapper) the float64 model's matrix products must still bind
    to torch's own (the loader opens the pair library with RTLD_DEEPBIND)."""
    process, result = run_example(
        [str(BIN / "lmp"), "-in", "in.md", "-var", "steps", "2", "-log", "none",
         "-var", "model", f"{mace_model} dtype float64"],
        {"LD_DEBUG": "bindings"},
    )
    assert process.returncode == 0, process.stdout[-3000:]
    bindings = [line for line in process.stderr.splitlines()
                if "libtorch_cpu.so" in line.split(" to ")[0] and "`dgemm_'" in line]
    assert bindings, "torch never called dgemm_: the check saw nothing"
    assert all(" to " in line and "libtorch_cpu.so" in line.split(" to ")[1]
               for line in bindings), bindings
