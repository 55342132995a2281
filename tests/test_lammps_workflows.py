"""pair_style mlipdrive on the workflows LAMMPS users run, with every model family.

Each case runs the real ``lmp`` (1 to 4 MPI ranks, every layout of the System)
and compares every checkpoint that LAMMPS writes out with
``metatomic_ase.MetatomicCalculator`` evaluated on that same structure
(``tests/lammps_reference.py``): energy, per-atom energies, forces, virial, and
the sums of ``compute pe/atom`` and ``compute stress/atom``.

The whole matrix (every boundary x cell x ranks x layout x family, every
workflow x family x ranks) is marked ``matrix``::

    .venv/bin/python -m pytest -m matrix tests/test_lammps_workflows.py

``make test`` runs the slice below, in which every boundary, cell shape, rank
count, layout, workflow and model family appears at least once.
"""

import itertools
import pathlib

import numpy as np
import pytest
from lammps_reference import COMPUTES, assert_matches_reference, checkpoint, read_checkpoints
from lammps_testing import expected_layout, lower_triangular, run_lmp, verify_option, write_data

from structures import copper_aluminium

FAMILIES = ["mace", "pet", "soap_bpnn"]
ELEMENTS = {1: 29, 2: 13}
MASSES = {1: 63.546, 2: 26.9815385}
# vacuum on each side of a non-periodic axis, Å
VACUUM = 6.0


# ----------------------------------------------------------------- structures


def frame_cell(boundary: str, shape: str, seed: int):
    """A rattled CuAl alloy of 108 atoms, cut open along the non-periodic axes.

    Tilts that involve a non-periodic axis are dropped; each non-periodic axis
    gets ``VACUUM`` on both sides.
    """
    atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03 if shape == "triclinic" else 0.0, seed=seed)
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    periodic = [flag == "p" for flag in boundary]
    for row, column in [(1, 0), (2, 0), (2, 1)]:
        if not (periodic[row] and periodic[column]):
            cell[row, column] = 0.0
    fractions = positions @ np.linalg.inv(cell)
    for axis in range(3):
        if periodic[axis]:
            fractions[:, axis] %= 1.0
    positions = fractions @ cell
    for axis in range(3):
        if not periodic[axis]:
            low = positions[:, axis].min() - VACUUM
            positions[:, axis] -= low
            cell[axis, axis] = positions[:, axis].max() + VACUUM
    types = [1 if z == 29 else 2 for z in atoms.numbers]
    return cell, positions, types


def write_frame(path: pathlib.Path, boundary="ppp", shape="orthogonal", seed=7, extra_type=False):
    """The data file of :func:`frame_cell`; ``extra_type`` turns every 9th atom into type 3."""
    cell, positions, types = frame_cell(boundary, shape, seed)
    masses = dict(MASSES)
    if extra_type:
        types = [3 if index % 9 == 0 else t for index, t in enumerate(types)]
        masses[3] = 39.948
    write_data(path, cell, positions, types, masses)


# ---------------------------------------------------------------- the script


def pair_lines(family, options="", elements="Cu Al") -> str:
    """pair_style and pair_coeff for ``family``, with ``verify on``: each step's
    System is also built from scratch and compared with the kept one."""
    extensions = f" extensions {family.extensions}" if family.extensions else ""
    return (f"pair_style mlipdrive {family.path}{extensions} {verify_option()} {options}\n"
            f"pair_coeff * * {elements}")


def header(boundary="ppp", units="metal", processors="") -> str:
    return "\n".join(
        [
            f"units {units}",
            f"boundary {' '.join(boundary)}",
            "atom_style atomic",
            processors,
            "read_data frame.data",
        ]
    )


def hybrid_lines(family) -> str:
    """mlipdrive for types 1 and 2 under hybrid/overlay, type 3 left to pair_style zero."""
    style, _ = pair_lines(family).splitlines()
    return "\n".join(
        [
            style.replace("pair_style mlipdrive", "pair_style hybrid/overlay mlipdrive") + " zero 5.0",
            "pair_coeff * * mlipdrive Cu Al NULL",
            "pair_coeff * 3 zero",
        ]
    )


def setup(family, boundary="ppp", options="", processors="", units="metal", pair_first=False, hybrid=False) -> str:
    """The input up to the first checkpoint; ``pair_first``: pair_style before the box."""
    pair = hybrid_lines(family) if hybrid else pair_lines(family, options)
    style, coeff = pair.split("\n", 1)
    lines = [header(boundary, units, processors), pair] if not pair_first else [
        f"units {units}",
        f"boundary {' '.join(boundary)}",
        style,
        "read_data frame.data",
        coeff,
    ]
    return "\n".join([*lines, "neighbor 1.0 bin", "neigh_modify every 1 delay 0 check yes", COMPUTES])


def md(steps=20, temperature=600, seed=4928) -> str:
    return "\n".join(
        [
            f"velocity all create {temperature} {seed} loop geom",
            "fix nve all nve",
            "timestep 0.002",
            "thermo 10",
            f"run {steps}",
            "unfix nve",
        ]
    )


def layout_options(ranks: int, layout: str) -> str:
    return "mode ghosts" if layout == "ghosts" else ""


def run_and_compare(tmp_path, family, script, ranks, elements=ELEMENTS, units="metal"):
    """Run ``script`` and compare every checkpoint with the reference; the frames."""
    result = run_lmp(tmp_path, script, ranks)
    frames = read_checkpoints(tmp_path, units)
    numbers = [elements.get(t, 0) for t in range(1, max(elements) + 1)]
    assert_matches_reference(list(frames.values()), family, numbers, units)
    return result, frames


def in_turn(index: int, offset: int = 0) -> str:
    """The model family whose turn it is: slices rotate through the families."""
    return FAMILIES[(index + offset) % len(FAMILIES)]


def matrix_unless(default: bool):
    return () if default else (pytest.mark.matrix,)


# ------------------------------------------------------ boundaries and ranks

# (boundary, shape): triclinic only where tilts between periodic axes exist
GEOMETRIES = [
    ("ppp", "orthogonal"),
    ("ppp", "triclinic"),
    ("ppf", "orthogonal"),
    ("ppf", "triclinic"),
    ("pps", "triclinic"),
    ("ppm", "orthogonal"),
    ("ffp", "orthogonal"),
    ("fff", "orthogonal"),
    ("sss", "orthogonal"),
]
# (ranks, layout): one rank is periodic unless told 'mode ghosts'; several ranks
# ("auto") are mixed where the processor grid leaves a periodic axis uncut, else ghosts
DECOMPOSITIONS = [(1, "periodic"), (1, "ghosts"), (2, "auto"), (2, "ghosts"), (3, "auto"), (4, "auto")]


def geometry_cases():
    """Every combination; the slice has each geometry on one rank in the periodic
    layout (LAMMPS's default path) and in a ghosts decomposition taken in turn."""
    in_slice = set()
    for index, geometry in enumerate(GEOMETRIES):
        in_slice.add((geometry, DECOMPOSITIONS[0], in_turn(index)))
        in_slice.add((geometry, DECOMPOSITIONS[1 + index % 5], in_turn(index, 1)))
    cases = []
    for geometry, decomposition, family in itertools.product(GEOMETRIES, DECOMPOSITIONS, FAMILIES):
        (boundary, shape), (ranks, layout) = geometry, decomposition
        marks = matrix_unless((geometry, decomposition, family) in in_slice)
        case_id = f"{boundary}-{shape}-np{ranks}-{layout}-{family}"
        cases.append(pytest.param(boundary, shape, ranks, layout, family, marks=marks, id=case_id))
    return cases


@pytest.mark.parametrize("boundary, shape, ranks, layout, model_family", geometry_cases(), indirect=["model_family"])
def test_boundaries_cells_and_ranks(tmp_path, boundary, shape, ranks, layout, model_family):
    """A frame, then 20 MD steps (atoms cross sub-domains), both against the reference."""
    write_frame(tmp_path / "frame.data", boundary, shape)
    script = "\n".join(
        [
            setup(model_family, boundary, layout_options(ranks, layout)),
            checkpoint("start"),
            md(),
            checkpoint("after_md"),
        ]
    )
    result, _ = run_and_compare(tmp_path, model_family, script, ranks)
    expected = expected_layout(result.output, boundary, "ghosts" if layout == "ghosts" else "auto")
    assert f"mlipdrive: {expected} layout" in result.output


@pytest.mark.parametrize(
    "model_family", [pytest.param(f, marks=matrix_unless(f == "mace")) for f in FAMILIES], indirect=True
)
def test_rank_without_atoms(tmp_path, model_family):
    """A slab along z on 4 ranks stacked along z: the outer ranks own no atom."""
    write_frame(tmp_path / "frame.data", "ppf")
    script = "\n".join(
        [setup(model_family, "ppf", processors="processors 1 1 4"), checkpoint("start"), md(10), checkpoint("after_md")]
    )
    result, _ = run_and_compare(tmp_path, model_family, script, 4)
    nlocal = next(line for line in result.output.splitlines() if line.startswith("Nlocal:"))
    assert nlocal.split()[-2:] == ["0", "min"], nlocal


# ------------------------------------------------------------------ workflows
# Each workflow is the input after setup(); it ends with at least one checkpoint.


def minimize():
    return "\n".join(["min_style cg", "minimize 0 1e-6 40 400", checkpoint("minimized")])


def box_relax():
    lines = ["fix relax all box/relax tri 0.0 vmax 0.002", "min_style cg", "minimize 0 1e-6 30 300", "unfix relax"]
    return "\n".join([*lines, checkpoint("relaxed")])


def npt():
    lines = [
        "velocity all create 300 77 loop geom",
        "fix npt all npt temp 300 300 0.1 tri 0 0 0.5",
        "timestep 0.002",
        "run 20",
        "unfix npt",
    ]
    return "\n".join([*lines, checkpoint("after_npt")])


def change_box():
    return "change_box all x scale 1.02 y scale 0.99 xy delta 0.3 remap units box\n" + checkpoint("changed")


def delete_atoms():
    return "delete_atoms random count 7 yes all NULL 4827 compress yes\n" + checkpoint("deleted")


def set_type():
    return "set atom 1*30 type 2\nset atom 31*40 type 1\n" + checkpoint("retyped")


def run0_repeated():
    return "\n".join([checkpoint("first"), checkpoint("second"), checkpoint("third")])


def restart():
    """write_restart, clear, read_restart: the pair style comes back from the file."""
    lines = [md(10), "write_restart state.restart", "clear", "read_restart state.restart", COMPUTES]
    return "\n".join([*lines, checkpoint("restarted"), md(5), checkpoint("after_restart_md")])


def restart_respecified(family):
    """The usual LAMMPS habit: pair_style and pair_coeff given again after read_restart."""
    lines = ["write_restart again.restart", "clear", "read_restart again.restart", pair_lines(family), COMPUTES]
    return "\n".join([*lines, checkpoint("respecified")])


def deposit():
    """Five Cu atoms dropped onto a slab (boundary p p f), one every 10 steps."""
    lines = [
        "region top block $(xlo) $(xhi) $(ylo) $(yhi) $(zhi-4.5) $(zhi-2.5) units box",
        "fix deposit all deposit 5 1 10 2025 region top near 2.0 vz -2.0 -2.0 units box",
        "velocity all create 300 77 loop geom",
        "fix nve all nve",
        "fix cool all langevin 300 300 0.1 99",
        "timestep 0.002",
        "compute_modify thermo_temp dynamic/dof yes",
        "run 50",
        "unfix deposit",
        "unfix cool",  # the dumped forces must be the pair style's alone
        "unfix nve",
    ]
    return "\n".join([*lines, checkpoint("deposited")])


def gcmc():
    """Cu insertions, deletions and moves (fix gcmc evaluates the full energy)."""
    lines = [
        "fix gcmc all gcmc 1 4 4 1 2027 600 -3.0 0.2 full_energy",
        "compute_modify thermo_temp dynamic/dof yes",
        "run 4",
        "unfix gcmc",
    ]
    return "\n".join([*lines, checkpoint("after_gcmc")])


def chain(family):
    """Every workflow of a periodic triclinic box in one input, pair_style first."""
    steps = [run0_repeated(), set_type(), change_box(), delete_atoms(), minimize(), box_relax(), npt(), restart(),
             restart_respecified(family)]
    return "\n".join(steps)


# name -> (the input after setup, boundary, shape, units, pair_style first, hybrid with a NULL type)
WORKFLOWS = {
    "minimize": (lambda family: minimize(), "ppp", "orthogonal", "metal", False, False),
    "box_relax": (lambda family: box_relax(), "ppp", "triclinic", "metal", False, False),
    "npt": (lambda family: npt(), "ppp", "triclinic", "metal", False, False),
    "change_box": (lambda family: change_box(), "ppp", "triclinic", "metal", False, False),
    "delete_atoms": (lambda family: delete_atoms() + "\n" + md(10) + "\n" + checkpoint("after_md"),
                     "ppp", "orthogonal", "metal", False, False),
    "set_type": (lambda family: set_type(), "ppp", "orthogonal", "metal", False, False),
    "run0_repeated": (lambda family: run0_repeated(), "ppp", "orthogonal", "metal", False, False),
    "pair_style_before_box": (lambda family: md(10) + "\n" + checkpoint("after_md"), "ppp", "orthogonal", "metal",
                              True, False),
    "restart": (lambda family: restart() + "\n" + restart_respecified(family), "ppp", "orthogonal", "metal", False, False),
    "deposit": (lambda family: deposit(), "ppf", "orthogonal", "metal", False, False),
    "gcmc": (lambda family: gcmc(), "ppp", "orthogonal", "metal", False, False),
    "units_real": (lambda family: md(10) + "\n" + checkpoint("after_md"), "ppp", "orthogonal", "real", False, False),
    "chain": (chain, "ppp", "triclinic", "metal", True, False),
    "hybrid_null": (lambda family: md(10) + "\n" + checkpoint("after_md"), "ppp", "triclinic", "metal", False, True),
}
# the slice: the chain for every family on 1 and 2 ranks, the workflows that
# need their own box or units once each, families in turn
SLICE = {("chain", ranks, family) for ranks in (1, 2) for family in FAMILIES}
SLICE |= {("deposit", 1, "mace"), ("gcmc", 2, "pet"), ("units_real", 1, "soap_bpnn"), ("hybrid_null", 2, "mace")}


def workflow_cases():
    cases = []
    for name, ranks, family in itertools.product(WORKFLOWS, [1, 2], FAMILIES):
        marks = matrix_unless((name, ranks, family) in SLICE)
        cases.append(pytest.param(name, ranks, family, marks=marks, id=f"{name}-np{ranks}-{family}"))
    return cases


@pytest.mark.parametrize("workflow, ranks, model_family", workflow_cases(), indirect=["model_family"])
def test_workflow(tmp_path, workflow, ranks, model_family):
    body, boundary, shape, units, pair_first, hybrid = WORKFLOWS[workflow]
    write_frame(tmp_path / "frame.data", boundary, shape, extra_type=hybrid)
    script = "\n".join(
        [
            setup(model_family, boundary, units=units, pair_first=pair_first, hybrid=hybrid),
            checkpoint("start"),
            body(model_family),
        ]
    )
    elements = {**ELEMENTS, 3: 0} if hybrid else ELEMENTS
    _, frames = run_and_compare(tmp_path, model_family, script, ranks, elements, units)
    if hybrid:
        # type 3 atoms feel nothing: the model never saw them
        for frame in frames.values():
            assert np.abs(frame.forces[frame.types == 3]).max() == 0.0
    if "deposited" in frames:
        assert len(frames["deposited"].ids) == 113
    if "deleted" in frames:
        assert len(frames["deleted"].ids) == len(frames["start"].ids) - 7
    if "minimized" in frames:
        assert frames["minimized"].energy < frames["start"].energy
    if "first" in frames:
        # equal to round-off: on several ranks each setup may reorder the atoms
        energies = [frames[name].energy for name in ("first", "second", "third")]
        assert max(energies) - min(energies) <= 1e-12 * abs(energies[0]), energies


# --------------------------------------------------------------- atom types


def swap_script(family, options, trials, temperature, seed=31):
    """``trials`` single-step runs of fix atom/swap, a checkpoint after each."""
    lines = [
        setup(family, options=options),
        checkpoint("trial0"),
        f"fix swap all atom/swap 1 1 {seed} {temperature} ke no types 1 2",
    ]
    for trial in range(1, trials + 1):
        lines += ["run 1", checkpoint(f"trial{trial}")]
    lines.append('print "SWAPS $(f_swap[1]) $(f_swap[2])"')
    return "\n".join(lines)


def swap_counts(output: str):
    line = next(line for line in output.splitlines() if line.startswith("SWAPS"))
    return [int(float(word)) for word in line.split()[1:]]


SWAP_CASES = [(1, "periodic", family) for family in FAMILIES] + [(2, "auto", family) for family in FAMILIES]
SWAP_CASES += [(1, "ghosts", "mace"), (2, "ghosts", "mace")]
# by default: every family on 1 rank, MACE on 2 ranks (auto and ghosts layouts)
DEFAULT_SWAP_CASES = [case for case in SWAP_CASES if case[0] == 1 and case[1] != "ghosts"]
DEFAULT_SWAP_CASES += [case for case in SWAP_CASES if case[0] == 2 and case[2] == "mace"]


@pytest.mark.parametrize(
    "ranks, layout, model_family",
    [pytest.param(*case, marks=matrix_unless(case in DEFAULT_SWAP_CASES)) for case in SWAP_CASES],
    indirect=["model_family"],
)
def test_atom_swap_decides_on_the_model_energy(tmp_path, ranks, layout, model_family):
    """fix atom/swap at 1 K changes types and calls the pair style without a
    neighbour-list rebuild: every accepted swap must lower the energy (LAMMPS's,
    equal to the reference's on every structure LAMMPS wrote), rejected ones
    leave it as it was."""
    write_frame(tmp_path / "frame.data")
    trials = 12
    script = swap_script(model_family, layout_options(ranks, layout), trials, 1.0)
    result, frames = run_and_compare(tmp_path, model_family, script, ranks)
    attempts, accepted = swap_counts(result.output)
    assert attempts == trials
    changed = 0
    for trial in range(1, trials + 1):
        before, after = frames[f"trial{trial - 1}"], frames[f"trial{trial}"]
        if np.array_equal(before.types, after.types):
            assert abs(after.energy - before.energy) <= model_family.energy_per_atom * len(after.ids)
            continue
        changed += 1
        assert after.energy < before.energy, (trial, before.energy, after.energy)
    assert changed == accepted
    assert 0 < accepted < trials, accepted
