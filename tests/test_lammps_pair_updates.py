"""Pairs crossing a cutoff between two neighbour-list rebuilds.

The plugin sorts its candidates once per rebuild into settled pairs (kept
without a test until an atom has moved more than half its margin), near pairs
(tested at each step) and dropped ones, and sorts them again when an atom moves
further (mlipdrive_system.h). Here LAMMPS rebuilds its list only every 100
steps (``check no``, a 3 Å skin that keeps the list complete), while two dimers
cross the 8.5 Å cutoff head-on: one pair enters from 9.2 Å, the other leaves
from 8.0 Å. Without the second sort the first pair would never be seen and the
second never left.
"""

import numpy as np
import pytest
from conftest import LJ_CUTOFF, LJ_EPSILON, LJ_SIGMA
from lammps_reference import read_dump_box
from lammps_testing import assert_thermo_close, read_dump, run_lmp
from witness_model import export_witness

import mlipdrive
from structures import SAME_MODEL

THERMO = ["PotEng", "TotEng", "Press", "Pxx"]  # (y and z: no motion, no force)

# (x, y, z) Å and vx Å/ps of four argon atoms: dimer 1-2 closes in, dimer 3-4 opens
ATOMS = [
    ((10.0, 10.0, 10.0), 10.0),
    ((19.2, 10.0, 10.0), -10.0),
    ((10.0, 40.0, 40.0), -10.0),
    ((18.0, 40.0, 40.0), 10.0),
]


def dimers_script(pair_lines, steps, dump=""):
    lines = [
        "units metal",
        "atom_modify sort 0 0.0",
        "boundary p p p",
        "region box block 0 60 0 60 0 60",
        "create_box 1 box",
        "mass 1 39.948",
    ]
    for index, ((x, y, z), vx) in enumerate(ATOMS, start=1):
        lines += [
            f"create_atoms 1 single {x} {y} {z} units box",
            f"group atom{index} id {index}",
            f"velocity atom{index} set {vx} 0.0 0.0 units box",
        ]
    lines += [
        pair_lines,
        "neighbor 3.0 bin",
        "neigh_modify every 100 delay 0 check no",
        "timestep 0.001",
        "thermo_style custom step pe ke press etotal pxx pyy pzz",
        "thermo_modify format float %.17g",
        "thermo 1",
        "fix 1 all nve",
        dump,
        f"run {steps}",
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("ranks", [1, 2])
def test_pair_entering_between_rebuilds_matches_lj_cut(tmp_path, lj_model_unshifted, ranks):
    plugin_lines = f"pair_style mlipdrive {lj_model_unshifted}\npair_coeff * * Ar"
    reference_lines = f"pair_style lj/cut {LJ_CUTOFF}\npair_coeff 1 1 {LJ_EPSILON} {LJ_SIGMA}"
    plugin = run_lmp(tmp_path / "plugin", dimers_script(plugin_lines, 60), ranks)
    reference = run_lmp(tmp_path / "reference", dimers_script(reference_lines, 60), ranks)
    thermo = reference.thermo()
    # the opening pair leaves the cutoff at step 25, the closing one comes in at
    # 35; nothing in between, and no rebuild
    inside = thermo["PotEng"] != 0.0
    steps = thermo["Step"]
    assert inside[steps < 24].all() and not inside[(steps > 26) & (steps < 34)].any()
    assert inside[steps > 36].all()
    assert "Neighbor list builds = 0" in plugin.output
    assert_thermo_close(plugin.thermo(), thermo, THERMO, SAME_MODEL)


def test_pairs_entering_and_leaving_match_the_python_driver(tmp_path):
    """The witness's envelope is not zero beyond its cutoff: a pair kept after it
    left (or missed after it came in) changes its energies."""
    model = export_witness(tmp_path / "witness.pt", LJ_CUTOFF)
    dump = "dump atoms all custom 60 atoms.dump id x y z c_pe\n"
    dump += "dump_modify atoms format float %.17g sort id"
    lines = f"pair_style mlipdrive {model}\npair_coeff * * Ar\ncompute pe all pe/atom"
    run_lmp(tmp_path / "lammps", dimers_script(lines, 60, dump))
    atoms = read_dump(tmp_path / "lammps" / "atoms.dump")
    cell, pbc = read_dump_box(tmp_path / "lammps" / "atoms.dump")
    positions = np.stack([atoms["x"], atoms["y"], atoms["z"]], axis=1)
    distances = np.linalg.norm(positions[[1, 3]] - positions[[0, 2]], axis=1)
    assert distances[0] < LJ_CUTOFF < distances[1]  # the first pair came in, the second left
    python = mlipdrive.load(model).compute(positions, np.full(4, 18), cell, pbc, per_atom=True)
    assert python.energies[0] != 0.0 and python.energies[2] == 0.0
    assert np.abs(atoms["c_pe"] - python.energies).max() <= SAME_MODEL * np.abs(python.energies).max()
