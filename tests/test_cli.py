"""The ``mlipdrive`` command, run as a user runs it."""

import subprocess
import sys

import pytest

MLIPDRIVE = [sys.executable, "-m", "mlipdrive.cli"]


def run(*args, timeout=300):
    return subprocess.run([*MLIPDRIVE, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_info_describes_model_and_settings(mace_model):
    result = run("info", mace_model, "--settings", "turbo", "--threads", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "atomic types      [13, 29]" in out
    assert "dtype             float64 (evaluated in float32)" in out
    assert "interaction range" in out and "neighbour list" in out
    assert "dtype              'float32'" in out  # turbo's evaluation dtype
    assert "threads            1" in out


def test_info_bad_model_path(tmp_path):
    result = run("info", tmp_path / "missing.pt")
    assert result.returncode == 2
    assert "does not exist; give the path" in result.stderr


def test_info_bad_setting_value(lj_model):
    result = run("info", lj_model, "--freeze", "sometimes")
    assert result.returncode == 2
    assert "expected on/off for setting 'freeze'" in result.stderr


@pytest.mark.parametrize("settings", ["default", "turbo"])
def test_run_prints_conserved_energy(mace_model, settings):
    result = run("run", "--model", mace_model, "--steps", "20", "--print-every", "10",
                 "--repeat", "2", "--settings", settings)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if not line.startswith("#")]
    assert [int(row[0]) for row in rows] == [0, 10, 20]
    totals = [float(row[3]) for row in rows]
    # 20 fs of NVE at 300 K: total energy per atom stays within 1 meV
    assert max(totals) - min(totals) < 1e-3
