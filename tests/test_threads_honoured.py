"""The torch threads that the LAMMPS plugin and our i-PI client compute with, in
every layout (MPI ranks x threads), observed from /proc: the threads of each
rank's process that did a real share of its work
(:mod:`mlipdrive.bench.threads_seen`), not what the programs print.

Expected per rank: ``threads N`` gives N (also against OMP_NUM_THREADS and
with more threads than cores); ``threads 0`` follows
:func:`mlipdrive.settings.torch_threads` (OMP_NUM_THREADS, else usable cores //
ranks on the node).
"""

import os

import ase.io
import pytest
from lammps_testing import run_lmp

from mlipdrive.bench.measure import kill_group, start_process
from mlipdrive.bench.threads_seen import ThreadWatch
from ipi_testing import (
    Simulation,
    client_command,
    ipi_command,
    remove_unix_socket,
    unique_address,
    write_input,
)
from mlipdrive.settings import torch_threads
from structures import argon, copper_aluminium
from model_families import MODEL_FAMILIES as FAMILIES

# (ranks, `threads` setting, OMP_NUM_THREADS or None for unset)
LAYOUTS = [
    (1, 1, "1"),
    (1, 2, "1"),  # the setting wins over OMP_NUM_THREADS
    (2, 1, "1"),
    (2, 2, "1"),  # 4 threads on 2 cores: still 2 per rank
    (1, 0, "2"),  # threads 0: OMP_NUM_THREADS
    (1, 0, None),  # threads 0, no OMP_NUM_THREADS: every usable core
    (2, 0, None),  # threads 0, no OMP_NUM_THREADS: usable cores // 2 ranks
]
# the oversubscribed layout is slow on 2 shared cores: make test-matrix
PARAMS = [pytest.param(*layout, id=f"{layout[0]}x{layout[1]}-omp{layout[2]}",
                       marks=(pytest.mark.matrix,) if layout[0] * layout[1] > 2 else ())
          for layout in LAYOUTS]
# the shipped families: an extension with its own OpenMP runtime (sphericart for
# SOAP-BPNN) would compute on every core with one thread asked and none set
FAMILY_LAYOUTS = [(1, 1, None), (1, 2, "1")]

# LJ argon, 2048 atoms, 100 steps: enough pairs (~8e4) for torch's parallel loops
# to split, and enough steps that the model, not the start-up, takes most of the CPU
REPEAT = 8
FAMILY_REPEAT = 3  # 108 CuAl atoms for the trained families, fewer steps
FAMILY_STEPS = 8
STEPS = 100


def expected(ranks: int, threads: int, omp) -> int:
    return torch_threads(threads, ranks, {} if omp is None else {"OMP_NUM_THREADS": omp})


def busy_per_rank(watch: ThreadWatch, folder, program: str):
    """Busy threads of each process in ``folder`` that runs ``program``."""
    return sorted(p.busy for p in watch.under(str(folder)) if program(p))


def is_lmp(process) -> bool:
    return process.command[0].endswith("/lmp")


def is_client(process) -> bool:
    return process.command[1:2] and process.command[1].endswith("/mlipdrive") and \
        "ipi" in process.command


def lammps_script(pair_style: str, threads: int, elements: str, repeat: int = REPEAT,
                  steps: int = STEPS) -> str:
    """LJ argon or, with two elements, a CuAl alloy: fcc, repeat^3 cells."""
    lattice = ["lattice fcc 5.26", "create_box 1 box", "create_atoms 1 box", "mass 1 39.948"]
    if elements != "Ar":
        lattice = ["lattice fcc 3.75", "create_box 2 box", "create_atoms 1 box",
                   "set type 1 type/fraction 2 0.5 2025", "mass 1 63.546", "mass 2 26.9815385"]
    return "\n".join([
        "units metal",
        lattice[0],
        f"region box block 0 {repeat} 0 {repeat} 0 {repeat}",
        *lattice[1:],
        f"{pair_style} threads {threads}",
        f"pair_coeff * * {elements}",
        "velocity all create 80 4928459",
        "fix nve all nve",
        f"run {steps}",
    ])


def lammps_threads(tmp_path, monkeypatch, pair_style, elements, ranks, threads, omp,
                   repeat=REPEAT, steps=STEPS):
    if omp is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    unset = ("OMP_NUM_THREADS",) if omp is None else ()
    with ThreadWatch() as watch:
        run_lmp(tmp_path, lammps_script(pair_style, threads, elements, repeat, steps),
                ranks=ranks, unset=unset)
    return busy_per_rank(watch, tmp_path, is_lmp)


@pytest.mark.parametrize("ranks, threads, omp", PARAMS)
def test_lammps_plugin_threads_in_every_layout(tmp_path, lj_model, monkeypatch, ranks,
                                               threads, omp):
    seen = lammps_threads(tmp_path, monkeypatch, f"pair_style mlipdrive {lj_model}", "Ar",
                          ranks, threads, omp)
    assert seen == [expected(ranks, threads, omp)] * ranks


def ipi_threads(tmp_path, model, structure, ranks, threads, omp, extra=(), steps=STEPS):
    """Busy threads of each rank of our client through a whole i-PI run."""
    name = unique_address("th")
    tmp_path.mkdir(parents=True, exist_ok=True)
    ase.io.write(tmp_path / "init.xyz", structure, format="extxyz")
    write_input(tmp_path, Simulation(steps=steps, temperature_k=80.0), unix=name)
    command = client_command("mpi" if ranks > 1 else "mlipdrive", model, unix=name,
                             ranks=ranks, extra=["--threads", str(threads), *extra])
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    started = []
    try:
        with ThreadWatch() as watch:
            for line, log in ((ipi_command(), "ipi"), (command, "client")):
                started.append(start_process([str(c) for c in line], cwd=tmp_path, env=env,
                                             stdout_path=tmp_path / f"{log}.log"))
            for process in reversed(started):
                assert process.wait(timeout=240) == 0, (tmp_path / "client.log").read_text()
    finally:
        for process in started:
            if process.poll() is None:
                kill_group(process)
                process.wait()
        remove_unix_socket(name)
    return busy_per_rank(watch, tmp_path, is_client)


@pytest.mark.parametrize("ranks, threads, omp", PARAMS)
def test_ipi_client_threads_in_every_layout(tmp_path, lj_model, ranks, threads, omp):
    structure = argon(repeat=REPEAT, rattle=0.05, strain=0.0)
    seen = ipi_threads(tmp_path, lj_model, structure, ranks, threads, omp)
    assert seen == [expected(ranks, threads, omp)] * ranks


def family_params():
    return [pytest.param(family, *layout, id=f"{family}-1x{layout[1]}-omp{layout[2]}",
                         marks=() if (family, layout[1]) == ("mace", 1) else (pytest.mark.matrix,))
            for family in FAMILIES for layout in FAMILY_LAYOUTS]


@pytest.mark.parametrize("model_family, ranks, threads, omp", family_params(),
                         indirect=["model_family"])
def test_threads_of_each_family(tmp_path, model_family, monkeypatch, ranks, threads, omp):
    """Every shipped family, LAMMPS then i-PI, on 108 CuAl atoms."""
    extensions = ["extensions", str(model_family.extensions)] if model_family.extensions else []
    pair_style = " ".join(["pair_style mlipdrive", str(model_family.path), *extensions])
    seen = lammps_threads(tmp_path / "lammps", monkeypatch, pair_style, "Cu Al", ranks,
                          threads, omp, repeat=FAMILY_REPEAT, steps=FAMILY_STEPS)
    assert seen == [expected(ranks, threads, omp)] * ranks, "LAMMPS"
    structure = copper_aluminium(repeat=FAMILY_REPEAT, rattle=0.05, strain=0.0)
    seen = ipi_threads(tmp_path / "ipi", model_family.path, structure, ranks, threads, omp,
                       ["--" + w if i == 0 else w for i, w in enumerate(extensions)],
                       steps=FAMILY_STEPS)
    assert seen == [expected(ranks, threads, omp)] * ranks, "i-PI"


FORKING = """
import os, sys, time
child = os.fork()
if child == 0:  # a fork that never runs a program of its own, as before an exec
    time.sleep(1.0)
    os._exit(0)
end = time.monotonic() + 0.8
while time.monotonic() < end:
    pass
os.waitpid(child, 0)
"""


def test_a_fork_before_its_exec_is_no_process_of_its_own(tmp_path):
    """A child seen between fork and exec shows its parent's command line and
    folder: it is left out, the parent (which did the work) counted once."""
    import subprocess
    import sys

    with ThreadWatch(every=0.05) as watch:
        subprocess.run([sys.executable, "-c", FORKING], cwd=tmp_path, check=True)
    seen = [p for p in watch.processes.values() if os.path.realpath(tmp_path) == p.cwd]
    assert len(seen) == 2  # the parent and its fork were both sampled
    kept = watch.under(str(tmp_path))
    assert [p.busy for p in kept] == [1]
