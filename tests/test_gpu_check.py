"""benchmarks/gpu_check.sh in its dry mode (``--device cpu``): the whole script
but CUDA itself, on tiny sizes, with the packages of this environment
(``--no-install``; the wheel install is the one pip step it adds on a GPU
machine). Its correctness part must pass in float64 and every bench row run."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


# matrix: 70 s (a scratch install and every engine); it matters when a GPU is lent
@pytest.mark.matrix
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu_check.sh"), "run", "--device", "cpu", "--no-install",
         "--python", sys.executable, "--sizes", "32", "--check-sizes", "32", "--budget", "0.1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    log = (out / "gpu_check.log").read_text()
    assert result.returncode == 0, log[-3000:]
    # mlipdrive came from the script's scratch copy, not from this checkout
    assert "/mlipdrive-gpu." in log.split("mlipdrive from", 1)[1].split("|", 1)[0]
    check = json.loads((out / "gpu_check.json").read_text())
    assert check["device"] == "cpu" and check["float64_ok"] is True
    assert set(check["sizes"][0]["float64"]) == {
        "metatomic_ase device vs cpu", "driver", "ase", "ipi"}
    bench = json.loads((out / "bench" / "bench.json").read_text())
    engines = {row["engine"] for row in bench["rows"] if row["status"] == "ok"}
    assert engines == {"raw", "driver", "ase", "metatomic-ase", "ipi", "ipi-metatomic"}
    assert all(row["status"] == "ok" for row in bench["rows"]), [
        row.get("error") for row in bench["rows"]]
