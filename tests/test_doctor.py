"""``mlipdrive doctor`` on a healthy set-up and on broken ones, as real processes.

A broken environment is a new venv that sees this one's packages (a .pth file)
but has its own prefix, so its plugin folder starts empty: the plugin is
missing; or it holds a loader built for another LAMMPS version next to the real
pair library. Doctor must say so, and give the fix.
"""

import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig

import pytest

from mlipdrive.lammps import plugin_directory
from mlipdrive.lammps.plugin_build import PLUGIN_FILES

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCTOR_TIMEOUT = 300


def doctor(python, *arguments):
    process = subprocess.run(
        [str(python), "-m", "mlipdrive.cli", "doctor", *arguments],
        capture_output=True, text=True, timeout=DOCTOR_TIMEOUT, cwd=ROOT,
    )
    return process.returncode, process.stdout + process.stderr


def test_healthy_setup(mace_model):
    code, output = doctor(sys.executable, "--model", str(mace_model))
    assert code == 0, output
    assert "registers pair_style mlipdrive (found through the lammps.plugins entry point" in output
    assert "torch's dgemm_ binds to torch's own BLAS" in output
    assert f"ok   model {mace_model}: loads (dtype float64" in output
    assert output.rstrip().endswith("mlipdrive doctor: no problem found")


def test_model_without_its_extensions():
    model = ROOT / "models" / "soap_bpnn" / "soap-bpnn-cual.pt"
    code, output = doctor(sys.executable, "--model", str(model))
    assert code == 1, output
    assert f"FAIL model {model}:" in output
    assert "fix: give the extensions folder" in output


@pytest.fixture
def other_venv(tmp_path) -> pathlib.Path:
    """A venv with this environment's packages and its own (empty) plugin folder."""
    venv = tmp_path / "venv"
    base = pathlib.Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    # addsitedir also runs the .pth files there (the editable install's finder)
    here = site.getsitepackages()[0]
    (pathlib.Path(purelib) / "parent_env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    return venv / "bin" / "python"


def test_plugin_missing(other_venv):
    code, output = doctor(other_venv)
    assert code == 1, output
    folder = other_venv.parent.parent / "lib" / "mlipdrive" / "lammps-plugin"
    assert f"FAIL plugin: {', '.join(PLUGIN_FILES)} missing in {folder}" in output
    assert "pip install --no-build-isolation -c constraints.txt ." in output
    # and the wheel's lmp, run for real, does not know the pair style
    assert "pair_style mlipdrive is not registered" in output


def test_plugin_for_another_lammps_version(other_venv, tmp_path):
    folder = other_venv.parent.parent / "lib" / "mlipdrive" / "lammps-plugin"
    folder.mkdir(parents=True)
    for name in PLUGIN_FILES[1:]:
        shutil.copy2(pathlib.Path(plugin_directory()) / name, folder / name)
    # the loader as CMake builds it, for a LAMMPS of 1 Jan 2020
    subprocess.run(
        ["c++", "-shared", "-fPIC", "-O1", "-DMLIPDRIVE_LAMMPS_VERSION_ID=20200101",
         '-DMLIPDRIVE_LAMMPS_VERSION_STRING="1 Jan 2020"', f"-I{ROOT / 'lammps_plugin'}",
         str(ROOT / "lammps_plugin" / "mlipdrive_loader.cpp"), "-o", str(folder / PLUGIN_FILES[0]),
         "-ldl"],
        check=True, timeout=300,
    )
    code, output = doctor(other_venv)
    assert code == 1, output
    assert ("mlipdrive plugin was built for LAMMPS version 20200101 (1 Jan 2020) but this is "
            "LAMMPS 20250722") in output
    assert "fix: mlipdrive build-plugin --lammps" in output


@pytest.mark.parametrize("lmp,finding", [
    ("/bin/true", "is not a LAMMPS executable (it printed no LAMMPS banner"),
    ("/nope/lmp", "not found"),
])
def test_lmp_that_is_not_lammps(lmp, finding):
    """--lmp naming something else is said so, with no plugin build for its folder."""
    code, output = doctor(sys.executable, "--lmp", lmp)
    assert code == 1, output
    lines = [line for line in output.splitlines() if "true" in line or "nope" in line]
    assert any(line.startswith("FAIL") and finding in line for line in lines), output
    assert not any("build-plugin" in line or "version unknown" in line for line in lines), output
