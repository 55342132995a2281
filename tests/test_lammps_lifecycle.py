"""pair_style mlipdrive through LAMMPS's multi-step commands, with every model family.

LAMMPS calls the pair style from many places besides ``run``: ``rerun`` frame by
frame, both stages of ``neb``, the quenches and restored states of ``prd``,
``tad`` and ``hyper``, the replicas of ``temper``, runs after ``minimize``,
``read_dump``, ``displace_atoms``, ``replicate`` and ``read_restart``, runs with
``pre no``, and boxes that ``fix deform`` changes during a run. Several of them
rebuild LAMMPS's neighbour list in a ``setup()`` (which sets ``neighbor->ncalls``
back to 0) without re-initialising the pair style, so a pair style that keeps its
System between steps must notice those rebuilds itself.

Each case runs the real ``lmp`` (and ``-partition`` where the command needs
replicas), dumps every structure LAMMPS evaluates with the pair style's forces,
per-atom energies and virials (``lammps_reference.trace``, one file per
partition, and ``checkpoint``), and compares every one with
``metatomic_ase.MetatomicCalculator`` on that structure, within the family's
tolerances. ``pair_style ... verify on`` also checks the kept System against one
built from scratch at every step. Each workflow's docstring says what it checks
besides.

The matrix (every workflow x layout x family) is marked ``matrix``; ``make test``
runs the slice (SLICE), in which every workflow, every rank count (1, 2, 3) and
every family appears at least once. The matrix without the slice, and all of it::

    .venv/bin/python -m pytest -m matrix tests/test_lammps_lifecycle.py
    .venv/bin/python -m pytest -m "matrix or not matrix" tests/test_lammps_lifecycle.py

To show which cases fail on another build of the plugin (without ``verify on``,
which it may not know)::

    MLIPDRIVE_TEST_PLUGIN_DIR=/its/directory .venv/bin/python -m pytest tests/test_lammps_lifecycle.py
"""

import dataclasses
import itertools
import pathlib
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
from lammps_reference import (
    COMPUTES,
    LammpsFrame,
    assert_matches_reference,
    checkpoint,
    read_checkpoints,
    read_trace,
    trace,
    trace_dump,
)
from lammps_testing import LmpResult, lower_triangular, run_lmp, thermo_tables, verify_option, write_data
from test_lammps_workflows import MASSES, pair_lines, write_frame

from model_families import ModelFamily
from structures import copper_aluminium

FAMILIES = ["mace", "pet", "soap_bpnn"]
ELEMENTS = [29, 13]  # LAMMPS types 1, 2: Cu, Al
LATTICE = 3.75  # Å, the cubic cell of structures.copper_aluminium; the box is 3 of them


# ----------------------------------------------------------------- structures


def lattice(rattle: float, seed: int, offset: float):
    """The 108-site CuAl alloy of structures.copper_aluminium in its 11.25 Å cube,
    translated by ``offset`` Å along each axis and wrapped: cell, positions, types."""
    atoms = copper_aluminium(repeat=3, rattle=rattle, strain=0.0, seed=seed)
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    positions = (positions + offset) % np.diag(cell)
    return cell, positions, np.where(atoms.numbers == 29, 1, 2)


def write_native_dump(path: pathlib.Path, cell, frames, types):
    """A LAMMPS text dump (id type x y z) of ``frames`` of positions in the orthogonal
    ``cell``, with the tilt columns a box from write_data has."""
    lengths = np.diag(cell).tolist()
    assert np.allclose(cell, np.diag(lengths)), "an orthogonal cell"
    lines = []
    for step, positions in enumerate(frames):
        lines += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", str(len(positions))]
        lines += ["ITEM: BOX BOUNDS xy xz yz pp pp pp", *(f"0.0 {length!r} 0.0" for length in lengths)]
        lines.append("ITEM: ATOMS id type x y z")
        for index, (t, position) in enumerate(zip(types, positions.tolist())):
            lines.append(f"{index + 1} {t} " + " ".join(repr(v) for v in position))
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


# rigid shifts of the rerun frames, Å: from 0.01 Å to a lattice constant
SHIFTS = [(0, 0, 0), (0.01, 0.01, 0.01), (0.3, 0.2, 0.1), (LATTICE, 0, 0), (LATTICE, LATTICE, 0.05), (0.2, LATTICE, LATTICE)]


def prepare_shifted(workdir: pathlib.Path):
    """The unrattled alloy with planes of atoms 0.15 Å inside the box faces, and
    shifted.dump: the same structure shifted by each of SHIFTS."""
    cell, positions, types = lattice(rattle=0.0, seed=7, offset=-0.15)
    write_data(workdir / "frame.data", cell, positions, types, MASSES)
    frames = [(positions + np.array(shift)) % np.diag(cell) for shift in SHIFTS]
    write_native_dump(workdir / "shifted.dump", cell, frames, types)


def prepare_hop(workdir: pathlib.Path):
    """A vacancy at site 0 of the rattled alloy (107 atoms) and final.coords, the
    neb final state: its nearest neighbour moved onto the empty site."""
    cell, positions, types = lattice(rattle=0.1, seed=6, offset=0.9)
    box = np.diag(cell)
    delta = positions - positions[0]
    delta -= np.round(delta / box) * box
    distance = np.linalg.norm(delta, axis=1)
    distance[0] = np.inf
    hop = int(np.argmin(distance))
    write_data(workdir / "frame.data", cell, positions[1:], types[1:], MASSES)
    x, y, z = (repr(float(v)) for v in positions[hop] - delta[hop])
    (workdir / "final.coords").write_text(f"1\n{hop} {x} {y} {z}\n")  # IDs 1.. are sites 1..


def prepare_frame(workdir: pathlib.Path):
    """The rattled 108-atom alloy of test_lammps_workflows."""
    write_frame(workdir / "frame.data")


# ------------------------------------------------------------------- scripts

NEIGHBOR = "neighbor 1.0 bin\nneigh_modify every 1 delay 0 check yes"


def setup(family, partitions: int, atom_modify: str, mode: str) -> str:
    """The input up to the workflow: box, pair style (verify on), computes, and
    ``mlipdrive_world``, the partition's index."""
    options = " ".join(filter(None, [verify_option(), "mode ghosts" if mode == "ghosts" else ""]))
    lines = ["units metal", "boundary p p p", "atom_style atomic", atom_modify, "read_data frame.data"]
    lines += [pair_lines(family, options), NEIGHBOR, COMPUTES]
    lines.append("variable mlipdrive_world world " + " ".join(str(k) for k in range(partitions)))
    return "\n".join(lines)


TRACE = "trace.${mlipdrive_world}"  # trace.<partition>.dump


def traced(every: int) -> str:
    return trace(every, TRACE)


def first_partition(lines: str) -> str:
    """``lines`` run on the first partition only."""
    return "\n".join(f"partition yes 1 {line}" for line in lines.splitlines())


# deform the box at the end of even steps only, dump at odd ones (1, 5, 9, ...): a
# dump written after fix deform changed the box holds forces of the box before
ODD_STEPS = "variable mlipdrive_odd equal stride(1,1000000,4)\ndump_modify mlipdrive_trace every v_mlipdrive_odd"


def md(steps: int) -> str:
    """``steps`` of NVE from 600 K."""
    lines = ["velocity all create 600 4928 loop geom", "fix nve all nve", "timestep 0.002"]
    return "\n".join([*lines, f"run {steps}", "unfix nve"])


# prd and tad set the timestep back after each quench: a per-atom compute that thermo
# invoked at a step of that number is not computed again for the dump (its values
# follow the atoms' order of then, which migration changed), so thermo leaves them out
PLAIN_THERMO = "thermo_style custom step pe"

# 900 K: langevin and velocities, their seeds per partition
HOT = "fix heat all langevin 900 900 0.1 ${mlipdrive_world}77\nvelocity all create 900 4${mlipdrive_world}4 loop geom"


# --------------------------------------------------------------- the results


@dataclasses.dataclass
class Run:
    """What one case's lmp wrote."""

    workdir: pathlib.Path
    result: LmpResult
    traces: List[List[LammpsFrame]]  # by partition
    checkpoints: Dict[str, LammpsFrame]
    family: ModelFamily

    @property
    def frames(self) -> List[LammpsFrame]:
        return [frame for frames in self.traces for frame in frames] + list(self.checkpoints.values())


def read_run(workdir: pathlib.Path, result: LmpResult, partitions: int, family) -> Run:
    traces = [read_trace(workdir / f"trace.{p}.dump") for p in range(partitions)]
    checkpoints = read_checkpoints(workdir) if (workdir / "checkpoints.txt").exists() else {}
    return Run(workdir, result, traces, checkpoints, family)


def steps(frames: List[LammpsFrame]) -> List[int]:
    """The timesteps of trace frames (named ``trace.<partition>@<step>#<index>``)."""
    return [int(frame.name.split("@")[1].split("#")[0]) for frame in frames]


def energy_limit(family, energy: float, n_atoms: int) -> float:
    """eV: how far two evaluations of one structure may differ (the total energy
    rule of lammps_reference.energy_limits)."""
    return n_atoms * max(family.energy_per_atom, 8 * family.eps * abs(energy) / n_atoms)


def assert_same_energies(family, energies, n_atoms: int, printed: float = 0.0):
    """All ``energies`` of one structure equal; ``printed``: relative rounding of
    energies read from LAMMPS's text output."""
    energies = np.asarray(energies)
    limit = energy_limit(family, energies[0], n_atoms) + printed * np.abs(energies).max()
    assert np.ptp(energies) <= limit, (energies.tolist(), limit)


def assert_stages_agree(family, first, second, n_atoms: int):
    """Two thermo tables of neb (stage 1, climbing stage): the step they share is one
    geometry, so each replica's energy must be the one it had (to one unit of the 8
    digits that ``%12.8g`` prints of energies above 1 eV)."""
    assert first["Step"][-1] == second["Step"][0], (first["Step"], second["Step"])
    for column in (key for key in first if key.startswith("PE")):
        assert_same_energies(family, [first[column][-1], second[column][0]], n_atoms, printed=1e-7)


# ------------------------------------------------------------------ workflows
# Each workflow: input files, the commands after setup(), and its own checks.


def rerun_shifted(partitions: int) -> str:
    """rerun of six rigidly shifted copies of the alloy, whole planes of atoms crossing
    the box faces between frames with the counts of atoms and ghosts unchanged: every
    frame against the reference, and one energy for all."""
    return "\n".join([traced(1), "rerun shifted.dump dump x y z box yes format native"])


def check_rerun_shifted(run: Run):
    frames = run.traces[0]
    assert steps(frames) == list(range(len(SHIFTS)))
    assert_same_energies(run.family, [frame.energy for frame in frames], len(frames[0].ids))


def rerun_md(partitions: int) -> str:
    """rerun of an NVE trajectory dumped at every step (10 steps): every frame."""
    dump = "dump positions all custom 1 md.dump id type x y z\ndump_modify positions format float %.17g"
    return "\n".join([dump, md(10), "undump positions", traced(1), "rerun md.dump dump x y z box yes"])


def check_rerun_md(run: Run):
    assert steps(run.traces[0]) == list(range(11))


def neb(partitions: int) -> str:
    """neb of a vacancy hop, 10 steps of each stage: every replica of both stages
    (forces before fix neb's), and each replica's energy where the climbing stage
    starts equal to the one it had at the end of stage 1."""
    lines = [traced(5), "fix neb all neb 1.0", "min_style quickmin", "timestep 0.01"]
    return "\n".join([*lines, "neb 0.0 0.0 10 10 5 final final.coords"])


def check_neb(run: Run):
    for frames in run.traces:
        assert steps(frames) == [0, 5, 10, 15, 20]
    assert "Climbing replica" in run.result.output
    first, second = run.result.runs()[-2:]
    assert_stages_agree(run.family, first, second, len(run.traces[0][0].ids))


def tad(partitions: int) -> str:
    """tad at 900/1200 K (MD, quenches, a neb for each event): the quenched states it
    dumps at events (with LAMMPS's forces: fix store/force is not called again there),
    both stages of each neb agreeing (its log), then a checkpoint of the final state."""
    lines = ["compute event all event/displace 0.05", PLAIN_THERMO, trace_dump(10, TRACE, forces="fx fy fz")]
    lines += ["fix nve all nve", HOT, "timestep 0.002"]
    lines.append("tad 40 10 900 1200 0.05 0.01 event min 0.01 0.01 20 20 neb 0.0 0.01 10 10 5 neb_log neb.log")
    return "\n".join([*lines, "unfix heat", "unfix nve", first_partition(checkpoint("after_tad"))])


def check_tad(run: Run):
    events = [line.split() for line in run.result.output.splitlines() if line.split()[4:5] == ["E"]]
    assert int(events[-1][2]) >= 1 and len(run.traces[0]) >= 2, "tad found no event"
    tables = thermo_tables((run.workdir / "neb.log").read_text())
    assert tables and len(tables) % 2 == 0, len(tables)
    for first, second in zip(tables[::2], tables[1::2]):
        assert_stages_agree(run.family, first, second, len(run.checkpoints["after_tad"].ids))


def prd(partitions: int) -> str:
    """prd at 900 K (dephasing, quenches, restored hot states): the quenched states
    it dumps at events."""
    lines = ["compute event all event/displace 0.05", PLAIN_THERMO, traced(10), "fix nve all nve", HOT]
    return "\n".join([*lines, "timestep 0.002", "prd 60 10 2 5 10 event 54654 temp 900 min 0.01 0.01 20 20"])


def check_prd(run: Run):
    assert len(run.traces[0]) >= 2, "prd dumped no event"


def temper(partitions: int) -> str:
    """temper of replicas 30 K apart, swaps tried every 2 steps: every replica every
    10 steps, and swaps accepted."""
    temperatures = " ".join(str(600 + 30 * k) for k in range(partitions))
    lines = [f"variable t world {temperatures}", traced(10), "fix nve all nve"]
    lines += ["fix heat all langevin ${t} ${t} 0.1 ${mlipdrive_world}77", "velocity all create ${t} 4928 loop geom"]
    return "\n".join([*lines, "timestep 0.002", "temper 40 2 ${t} heat 3847 9283"])


def check_temper(run: Run):
    table = run.result.runs()[-1]
    order = np.stack([table[key] for key in table if key.startswith("T")], axis=1)
    assert (np.diff(order, axis=0) != 0).any(), "temper accepted no swap"
    for frames in run.traces:
        assert steps(frames) == [0, 10, 20, 30, 40]


def hyper(partitions: int) -> str:
    """hyper with fix hyper/global (no boost: Vmax 0, so that the dumped forces are
    the pair style's), quenches every 10 steps: the MD every 10 steps, then a checkpoint."""
    lines = ["compute event all event/displace 0.05", traced(10), "fix nve all nve", HOT, "timestep 0.002"]
    lines += ["fix boost all hyper/global 3.2 0.3 0.0 900", "hyper 40 10 boost event min 0.01 0.01 20 20"]
    return "\n".join([*lines, "unfix boost", "unfix heat", "unfix nve", checkpoint("after_hyper")])


def check_hyper(run: Run):
    assert steps(run.traces[0])[:5] == [0, 10, 20, 30, 40]


def minimize_after_run(partitions: int) -> str:
    """minimize (cg) right after 20 MD steps: every 5 steps of both, then a checkpoint."""
    return "\n".join([traced(5), md(20), "min_style cg", "minimize 0 1e-6 20 200", checkpoint("minimized")])


def check_minimize_after_run(run: Run):
    after_md = next(frame for frame in run.traces[0] if steps([frame]) == [20])
    assert run.checkpoints["minimized"].energy < after_md.energy


def run_pre_no(partitions: int) -> str:
    """run 10 continued by two ``run 10 pre no post no`` (no setup between them):
    every 5 steps, then a checkpoint."""
    lines = ["velocity all create 600 4928 loop geom", "fix nve all nve", "timestep 0.002", "run 10"]
    lines += ["run 10 pre no post no", "run 10 pre no post no", "unfix nve"]
    return "\n".join([traced(5), *lines, checkpoint("after")])


def check_run_pre_no(run: Run):
    assert steps(run.traces[0])[:7] == [0, 5, 10, 15, 20, 25, 30]


def read_dump_between_runs(partitions: int) -> str:
    """runs started from frames of an earlier run by ``read_dump`` (steps 5, then 0):
    every 5 steps of each run, then a checkpoint."""
    dump = "dump positions all custom 5 positions.dump id type x y z\ndump_modify positions format float %.17g"
    lines = [traced(5), dump, "velocity all create 600 4928 loop geom", "fix nve all nve", "timestep 0.002"]
    for step in (5, 0):
        lines += ["run 10" if step == 5 else "run 5", "undump mlipdrive_trace", "undump positions" if step == 5 else ""]
        lines += [f"read_dump positions.dump {step} x y z box yes", trace_dump(5, TRACE)]
    lines += ["run 5", "unfix nve"]
    return "\n".join([*lines, checkpoint("after")])


def check_read_dump(run: Run):
    assert steps(run.traces[0]) == [0, 5, 10, 5, 10, 0, 5]


def displace_between_runs(partitions: int) -> str:
    """``displace_atoms`` between runs (a rigid move across the box faces, then a
    random one): checkpoints before and after, every 5 steps of the runs."""
    lines = [traced(5), checkpoint("before"), "displace_atoms all move 0.31 0.17 0.09 units box", md(10)]
    lines += ["displace_atoms all random 0.05 0.05 0.05 9371 units box", md(5)]
    return "\n".join([*lines, checkpoint("after")])


def check_displace(run: Run):
    assert steps(run.traces[0]) == [0, 5, 10, 15]


def deform(partitions: int) -> str:
    """fix deform (x scale 1.03, y 0.98, xy to 0.4 Å over 20 steps, remap x): steps 1,
    5, ..., 17 of the changing box, then a checkpoint in the final box."""
    stretch = "fix stretch all deform 2 x scale 1.03 y scale 0.98 xy final 0.4 remap x"
    lines = ["velocity all create 600 4928 loop geom", "fix nve all nve", stretch, "timestep 0.002", "run 20"]
    return "\n".join([traced(1), ODD_STEPS, *lines, "unfix stretch", "unfix nve", checkpoint("deformed")])


def check_deform(run: Run):
    assert steps(run.traces[0]) == [1, 5, 9, 13, 17]
    cell = run.checkpoints["deformed"].cell
    assert abs(cell[0, 0] / 11.25 - 1.03) < 1e-6 and abs(cell[1, 0] - 0.4) < 1e-6, cell


def indent(partitions: int) -> str:
    """fix indent (a 2.5 Å sphere in the middle of the box): every 5 steps (the pair
    style's forces, stored before the indenter's), then a checkpoint without it."""
    push = "fix push all indent 5.0 sphere 5.625 5.625 5.625 2.5 units box"
    lines = ["velocity all create 600 4928 loop geom", "fix nve all nve", push, "timestep 0.002", "run 20"]
    lines += ['print "INDENTER $(f_push:%.17g)"', "unfix push", "unfix nve"]
    return "\n".join([traced(5), *lines, checkpoint("after")])


def check_indent(run: Run):
    line = next(line for line in run.result.output.splitlines() if line.startswith("INDENTER"))
    assert float(line.split()[1]) > 0.0, "the indenter touched no atom"


def sllod(partitions: int) -> str:
    """fix nvt/sllod with fix deform xy erate 0.5/ps remap v (shear flow): steps 1, 5,
    ..., 17, then a checkpoint."""
    shear = "fix shear all deform 2 xy erate 0.5 remap v\nfix sllod all nvt/sllod temp 600 600 0.1"
    lines = ["velocity all create 600 4928 loop geom", shear, "timestep 0.002", "run 20", "unfix sllod", "unfix shear"]
    return "\n".join([traced(1), ODD_STEPS, *lines, checkpoint("sheared")])


def check_sllod(run: Run):
    assert steps(run.traces[0]) == [1, 5, 9, 13, 17]
    assert run.checkpoints["sheared"].cell[1, 0] > 0.2


def replicate(partitions: int) -> str:
    """``replicate 2 1 1`` between two runs (108 -> 216 atoms): every 5 steps, then a checkpoint."""
    lines = ["velocity all create 600 4928 loop geom", "fix nve all nve", "timestep 0.002", "run 5"]
    lines += ["replicate 2 1 1", "run 5", "unfix nve"]
    return "\n".join([traced(5), *lines, checkpoint("replicated")])


def check_replicate(run: Run):
    assert len(run.checkpoints["replicated"].ids) == 216


def restart_chain(partitions: int) -> str:
    """write_dump and write_restart, clear, read_restart (the pair style from the
    file), read_dump of the written frame, run: every 5 steps, then a checkpoint."""
    lines = [traced(5), md(10), "write_dump all custom state.dump id type x y z modify format float %.17g"]
    lines += ["write_restart state.restart", "clear", "read_restart state.restart"]
    lines += ["read_dump state.dump 10 x y z box yes", NEIGHBOR, COMPUTES, traced(5), "fix nve all nve", "run 5"]
    return "\n".join([*lines, "unfix nve", checkpoint("restarted")])


def check_restart_chain(run: Run):
    assert steps(run.traces[0])[-2:] == [10, 15]


@dataclasses.dataclass(frozen=True)
class Workflow:
    """One workflow: its input files, commands, checks, where it runs."""

    prepare: Callable[[pathlib.Path], None]
    commands: Callable[[int], str]  # the input after setup(), for this many partitions
    check: Callable[[Run], None]
    layouts: Tuple[Tuple[int, int, str], ...]  # (partitions, ranks per partition, mode)
    atom_modify: str = ""


# one partition on 1, 2, 3 ranks; commands with replicas on several partitions
RANKS = ((1, 1, ""), (1, 2, ""), (1, 3, ""))
MAP = "atom_modify map array"

WORKFLOWS: Dict[str, Workflow] = {
    "rerun_shifted": Workflow(prepare_shifted, rerun_shifted, check_rerun_shifted, RANKS + ((1, 1, "ghosts"),)),
    "rerun_md": Workflow(prepare_frame, rerun_md, check_rerun_md, RANKS + ((1, 1, "ghosts"),)),
    "neb": Workflow(prepare_hop, neb, check_neb, ((3, 1, ""), (3, 2, "")), MAP),
    # LAMMPS runs tad with one rank per replica only
    "tad": Workflow(prepare_frame, tad, check_tad, ((3, 1, ""), (4, 1, "")), MAP + " sort 0 0.0"),
    "prd": Workflow(prepare_frame, prd, check_prd, RANKS + ((3, 1, ""),), MAP),
    "temper": Workflow(prepare_frame, temper, check_temper, ((2, 1, ""), (3, 1, ""), (2, 2, ""))),
    "hyper": Workflow(prepare_frame, hyper, check_hyper, RANKS, MAP),
    "minimize_after_run": Workflow(prepare_frame, minimize_after_run, check_minimize_after_run, RANKS),
    "run_pre_no": Workflow(prepare_frame, run_pre_no, check_run_pre_no, RANKS),
    "read_dump": Workflow(prepare_frame, read_dump_between_runs, check_read_dump, RANKS),
    "displace_atoms": Workflow(prepare_frame, displace_between_runs, check_displace, RANKS),
    "deform": Workflow(prepare_frame, deform, check_deform, RANKS),
    "indent": Workflow(prepare_frame, indent, check_indent, RANKS),
    "sllod": Workflow(prepare_frame, sllod, check_sllod, RANKS),
    "replicate": Workflow(prepare_frame, replicate, check_replicate, RANKS),
    "restart_chain": Workflow(prepare_frame, restart_chain, check_restart_chain, RANKS),
}

# the slice of make test: each workflow once; ranks 1, 2, 3 and families in turn
SLICE = {
    ("rerun_shifted", (1, 2, ""), "mace"),
    ("rerun_md", (1, 1, ""), "pet"),
    ("neb", (3, 1, ""), "mace"),
    ("tad", (3, 1, ""), "mace"),
    ("prd", (1, 1, ""), "soap_bpnn"),
    ("temper", (2, 1, ""), "pet"),
    ("hyper", (1, 2, ""), "pet"),
    ("minimize_after_run", (1, 3, ""), "soap_bpnn"),
    ("run_pre_no", (1, 2, ""), "mace"),
    ("read_dump", (1, 1, ""), "soap_bpnn"),
    ("displace_atoms", (1, 3, ""), "mace"),
    ("deform", (1, 2, ""), "soap_bpnn"),
    ("indent", (1, 1, ""), "pet"),
    ("sllod", (1, 3, ""), "pet"),
    ("replicate", (1, 1, ""), "mace"),
    ("restart_chain", (1, 2, ""), "soap_bpnn"),
}


def lifecycle_cases():
    cases = []
    for name, workflow in WORKFLOWS.items():
        for layout, family in itertools.product(workflow.layouts, FAMILIES):
            partitions, ranks, mode = layout
            marks = () if (name, layout, family) in SLICE else (pytest.mark.matrix,)
            case_id = f"{name}-{partitions}x{ranks}{'-ghosts' if mode else ''}-{family}"
            cases.append(pytest.param(name, partitions, ranks, mode, family, marks=marks, id=case_id))
    return cases


@pytest.mark.parametrize("workflow, partitions, ranks, mode, model_family", lifecycle_cases(), indirect=["model_family"])
def test_lifecycle(tmp_path, workflow, partitions, ranks, mode, model_family):
    """Every structure the workflow dumps against the reference, then its own checks."""
    spec = WORKFLOWS[workflow]
    spec.prepare(tmp_path)
    script = "\n".join([setup(model_family, partitions, spec.atom_modify, mode), spec.commands(partitions)])
    arguments = ["-partition", f"{partitions}x{ranks}"] if partitions > 1 else []
    result = run_lmp(tmp_path, script, partitions * ranks, arguments=arguments)
    run = read_run(tmp_path, result, partitions, model_family)
    assert run.frames, "LAMMPS dumped no structure"
    assert_matches_reference(run.frames, model_family, ELEMENTS, label=f"{model_family.name} {workflow}")
    spec.check(run)
