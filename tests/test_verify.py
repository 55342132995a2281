"""The ``verify`` setting: with it on, every evaluation's model input is built
again from scratch and compared with what the caches gave the model.

(a) On real runs it finds nothing and changes nothing: ASE MD for every model
family, ``mlipdrive run``, the i-PI client serial and on 2 MPI ranks, each equal
bit for bit to the same run with verify off. (b) Caches corrupted on purpose (a
stale Verlet list, stale offsets, altered cached types, a stale domain halo, a
rank that builds another rank's domain) make it stop, naming the evaluation and
the first difference, where verify off silently returns another answer than a
fresh build. Its cost is measured with the harness (``mlipdrive bench --engines
driver --settings default preset=default,verify=on``), not here.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

import ase.md.verlet
import ase.units
import numpy as np
import pytest
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.stress import full_3x3_to_voigt_6_stress

import mlipdrive
from ipi_testing import Simulation, run_simulation
from mlipdrive.ase import MLIPCalculator
from mlipdrive.cli import main, settings_from_arguments
from mlipdrive.ipi import command as ipi_command
from mlipdrive.halo import DomainList
from mlipdrive.verify import VerifyError
from mpi_testing import MPIRUN, SCRIPTS
from structures import argon, copper_aluminium

sys.path.insert(0, str(SCRIPTS))
import decomposition_cases as cases  # noqa: E402

FAULTS_SCRIPT = SCRIPTS / "verify_faults.py"

# small enough that the short runs below rebuild their lists several times
SKIN = 0.1


def load(path, verify, extensions=None, **settings):
    return mlipdrive.load(path, settings={"verify": verify, **settings}, extensions=extensions)


def compute(potential, atoms, positions=None):
    positions = atoms.positions if positions is None else positions
    return potential.compute(positions, atoms.numbers, atoms.cell.array, atoms.pbc)


# ---------------------------------------------------------------------- (a) clean runs


def test_ase_md_finds_nothing_and_changes_nothing(model_family):
    """ASE velocity Verlet with verify on: each step's energy, forces and stress
    are those of verify off on the same structure, to the bit."""
    # graph_optimize off: TorchScript's profiling makes the first calls slow
    settings = {"skin": SKIN, "graph_optimize": False}
    on = load(model_family.path, True, model_family.extensions, **settings)
    off = load(model_family.path, False, model_family.extensions, **settings)
    atoms = copper_aluminium(repeat=2, seed=1)
    atoms.calc = MLIPCalculator(on)
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    Stationary(atoms)
    dynamics = ase.md.verlet.VelocityVerlet(atoms, timestep=2.0 * ase.units.fs)
    # the same structures in the same order: both lists are rebuilt at the same steps
    compute(off, atoms)
    for _ in range(6):
        dynamics.run(1)
        plain = compute(off, atoms)
        assert atoms.calc.results["energy"] == plain.energy
        assert np.array_equal(atoms.calc.results["forces"], plain.forces)
        assert np.array_equal(atoms.calc.results["stress"], full_3x3_to_voigt_6_stress(plain.stress))
    assert 2 <= on.verlet.rebuilds < on.evaluations, "the run must reuse and rebuild its list"


def test_mlipdrive_run_prints_the_same_with_verify(lj_model, tmp_path, capsys):
    argon(repeat=2).write(tmp_path / "argon.xyz")

    def run(*extra):
        code = main(["run", "--model", str(lj_model), "--structure", str(tmp_path / "argon.xyz"),
                     "--steps", "6", "--print-every", "1", "--skin", "0.05", *extra])
        assert code == 0
        return capsys.readouterr().out

    assert run("--verify", "on") == run()


def test_every_command_takes_verify(capsys):
    for command in ("ipi", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--verify BOOL" in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    ipi_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ipi", "--model", "m.pt", "--structure", "s.xyz", "--unix", "u",
                              "--verify", "on"])
    assert settings_from_arguments(args).verify


def ipi_pair(tmp_path, model, kind):
    """The same i-PI run (argon, NVE, reused and rebuilt lists) with verify on
    and off, side by side."""
    structure, simulation = argon(repeat=2), Simulation(steps=8, timestep_fs=4.0)
    options = ["--skin", "0.05", "--graph-optimize", "off", "-v"]
    jobs = {
        verify: (tmp_path / verify, structure, simulation, model, [kind])
        for verify in ("on", "off")
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = {
            verify: pool.submit(run_simulation, *job, extra=[*options, "--verify", verify])
            for verify, job in jobs.items()
        }
        return {verify: run.result() for verify, run in runs.items()}


@pytest.mark.parametrize("kind", ["mlipdrive", "mpi"])
def test_ipi_client_finds_nothing_and_changes_nothing(lj_model, tmp_path, kind):
    if kind == "mpi":
        pytest.importorskip("mpi4py")
    runs = ipi_pair(tmp_path, lj_model, kind)
    if kind == "mpi":
        assert "domain decomposition over 2 MPI ranks" in runs["on"].client_logs[0]
    assert np.array_equal(runs["on"].positions[0], runs["off"].positions[0])
    assert np.array_equal(runs["on"].properties, runs["off"].properties)


# ---------------------------------------------------------------------- (b) faults


def stale_verlet_list(potential, atoms, moved):
    """The list is kept although atoms moved far: its reference says they did not."""
    verlet = potential.verlet
    verlet._reference = (moved.copy(), *verlet._reference[1:])


def stale_offsets(potential, atoms, moved):
    """The candidates' kept offsets S @ cell, shifted by a little."""
    for _, candidates in potential._candidates_cache.values():
        candidates._offsets = candidates._offsets + 1e-6


def altered_types(potential, atoms, moved):
    """One atom of another element in the cached types (fixed_composition)."""
    _, types = potential._types_cache
    types[0] = 13 if int(types[0]) == 29 else 29


FAULTS = {
    # (model, settings, how the cache is corrupted, how far atoms move, what verify says)
    "stale Verlet list": ("lj", {"skin": 0.2}, stale_verlet_list, 0.3,
                          r"evaluation 2: neighbour list 0 \(half, cutoff 8.5 angstrom\): "
                          r"pair \(\d+, \d+, shift \[.*\]\) at [\d.]+ angstrom is missing"),
    "stale offsets": ("lj", {}, stale_offsets, 0.0,
                      r"evaluation 2: neighbour list 0 .*: vector of pair \(\d+, \d+, "
                      r"shift \[.*\]\): cached \[.*\], fresh \[.*\]"),
    "altered types": ("mace", {"fixed_composition": True, "graph_optimize": False},
                      altered_types, 0.0,
                      r"evaluation 2: type of atom 0: cached \d+, fresh \d+"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_corrupt_cache_is_caught(fault, lj_model, mace_model):
    """Verify on stops at the second evaluation, naming the difference, without
    a result; verify off, with the same corruption, answers something else than
    a fresh potential."""
    model, settings, corrupt, move, message = FAULTS[fault]
    path = lj_model if model == "lj" else mace_model
    atoms = argon(repeat=2) if model == "lj" else copper_aluminium(repeat=2)
    moved = atoms.positions + np.random.default_rng(0).normal(scale=move, size=(len(atoms), 3))
    answers = {}
    for verify in (True, False):
        potential = load(path, verify, **settings)
        compute(potential, atoms)
        corrupt(potential, atoms, moved)
        if verify:
            with pytest.raises(VerifyError, match=message):
                compute(potential, atoms, moved)
            assert potential.evaluations == 1
        else:
            answers["kept"] = compute(potential, atoms, moved).energy
    answers["fresh"] = compute(load(path, False, **settings), atoms, moved).energy
    assert answers["kept"] != answers["fresh"], "the corruption must change the answer"


def test_a_stale_domain_halo_is_caught(lj_model):
    """Three domains (the MPI path's, one after the other), the third keeping its
    domain although an atom moved 3 Å: verify names the image its halo lacks."""
    positions, types, cell, pbc = cases.structures(cases.LJ_SPECIES)["triclinic"]
    moved = positions.copy()
    moved[10, 0] += 3.0
    energies = {}
    for verify in (True, False):
        potential = load(lj_model, verify)
        lists = [DomainList(potential, 3, rank, skin=0.2) for rank in range(3)]
        summed(potential, lists, positions, types, cell, pbc)
        lists[2]._reference = (moved.copy(), *lists[2]._reference[1:])
        if verify:
            with pytest.raises(VerifyError, match=(
                r"evaluation 2: this rank's domain: atom 10 with cell shift \[0, 0, 0\], "
                r"within 8.5 of local atom 24, is missing from its halo"
            )):
                summed(potential, lists, moved, types, cell, pbc)
        else:
            energies["kept"] = summed(potential, lists, moved, types, cell, pbc)
    energies["fresh"] = load(lj_model, False).compute(moved, types, cell, pbc).energy
    assert abs(energies["kept"] - energies["fresh"]) > 1e-6


def summed(potential, lists, positions, types, cell, pbc) -> float:
    """One step of every domain in turn, as the ranks take it; the energy."""
    total = mlipdrive.Results(energy=0.0, forces=0.0)
    for domains in lists:
        domain, pairs = domains.update(positions, cell, pbc)
        share = domains.evaluator.evaluate(domain, types, pairs=pairs)
        total.energy += share.energy
        total.forces = total.forces + share.forces
    potential.finish(total)
    return total.energy


def test_domains_of_a_head_model_are_clean(tmp_path):
    """Domains of a model whose stress comes from its head get the structure's
    cell while their pairs keep the domain's periodicity: verify searches with
    the latter (pairs_pbc) and finds nothing."""
    from parity_models import export_parity_argon

    model = export_parity_argon(tmp_path / "parity.pt")
    potential = load(model, True, non_conservative=True)
    atoms = argon(repeat=3, seed=5)
    positions, cell, pbc = atoms.positions, atoms.cell.array, np.ones(3, bool)
    lists = [DomainList(potential, 2, rank, skin=0.2) for rank in range(2)]
    rng = np.random.default_rng(0)
    for _ in range(3):
        positions = positions + rng.normal(scale=0.05, size=positions.shape)
        for domains in lists:
            domain, pairs = domains.update(positions, cell, pbc)
            domains.evaluator.evaluate(
                domain, atoms.numbers, pairs=pairs, structure_cell=cell, structure_pbc=pbc
            )


def test_mpi_faults_are_caught_on_rank_0(lj_model, tmp_path):
    """Two ranks: a rank building the other's domain (the local atoms of one
    domain twice, of the other none; the counts still add up) is caught by the
    partition check; a worker's stale pair list is raised as its VerifyError.
    Verify off answers another energy than a fresh potential in both."""
    pytest.importorskip("mpi4py")
    if not MPIRUN.exists():
        pytest.skip(f"no mpirun next to {sys.executable}; pip install mpich")
    out = tmp_path / "faults.json"
    command = [str(MPIRUN), "-np", "2", sys.executable, str(FAULTS_SCRIPT), str(out), str(lj_model)]
    process = subprocess.run(command, capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert process.returncode == 0, process.stdout + process.stderr
    report = json.loads(out.read_text())
    assert report["double"]["error"].startswith("VerifyError: verify, evaluation 1: atom ")
    assert "is a local atom of 2 domains, not of exactly one" in report["double"]["error"]
    assert abs(report["double"]["kept"] - report["double"]["fresh"]) > 1e-6
    assert report["stale pairs"]["error"].startswith(
        "VerifyError: MPI rank 1: verify, evaluation 2: neighbour list 0 (half, cutoff 8.5 "
        "angstrom): pair ("
    )
    assert "is missing from the cached list" in report["stale pairs"]["error"]
    assert abs(report["stale pairs"]["kept"] - report["stale pairs"]["fresh"]) > 1e-6
