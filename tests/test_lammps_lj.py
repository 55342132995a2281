"""pair_style mlipdrive with the exact LJ model against LAMMPS's own pair_style lj/cut.

The LJ model computes the same function as lj/cut (same sigma, epsilon, cutoff,
shift), so every thermo column of an NVE run must agree to round-off: serial
and over MPI, orthogonal and triclinic boxes, with atoms drifting across
sub-domains, ``run`` repeated, boxes smaller than the cutoff, empty sub-domains,
hybrid/overlay, the four supported unit styles, and the two layouts of the
System (periodic on one rank, local + ghost atoms).
"""

import subprocess
import sys

import numpy as np
import pytest
from conftest import LJ_CUTOFF, LJ_EPSILON, LJ_SIGMA
from lammps_testing import (
    NVE_THERMO,
    assert_thermo_close,
    expected_layout,
    export_lj_variant,
    ghost_pairs,
    lj_lattice_lines,
    nve_script,
    read_dump,
    run_lmp,
    settings_table,
    verify_option,
)
from metatomic.torch import unit_conversion_factor

import strict_half_lj  # noqa: E402  (models/lj, on the path through conftest)
from structures import SAME_MODEL

def lj_cut(shift=False):
    lines = f"pair_style lj/cut {LJ_CUTOFF}\npair_coeff 1 1 {LJ_EPSILON} {LJ_SIGMA}"
    return lines + ("\npair_modify shift yes" if shift else "")


def mlipdrive(model, *options, elements="Ar"):
    return f"pair_style mlipdrive {model} {' '.join(options)}\npair_coeff * * {elements}"


def compare(tmp_path, plugin_lines, reference_lines, ranks, **script):
    reference = run_lmp(tmp_path / "reference", nve_script(reference_lines, **script), ranks)
    plugin = run_lmp(tmp_path / "plugin", nve_script(plugin_lines, **script), ranks)
    return assert_thermo_close(plugin.thermo(), reference.thermo(), NVE_THERMO, SAME_MODEL), plugin


@pytest.mark.parametrize("ranks", [1, 2, pytest.param(3, marks=pytest.mark.matrix)])
@pytest.mark.parametrize("structure", ["orthogonal", "triclinic"])
def test_nve_1000_steps_matches_lj_cut(tmp_path, lj_model_unshifted, structure, ranks):
    errors, plugin = compare(
        tmp_path, mlipdrive(lj_model_unshifted), lj_cut(), ranks, structure=structure
    )
    assert f"mlipdrive: {expected_layout(plugin.output)} layout" in plugin.output
    assert ("mlipdrive: mixed layout" in plugin.output) == (ranks > 1)
    assert plugin.thermo()["Step"][-1] == 1000


def test_shifted_full_list_model_matches_lj_cut_shift_yes(tmp_path, lj_model_full):
    compare(
        tmp_path, mlipdrive(lj_model_full), lj_cut(shift=True), 2,
        structure="triclinic", runs=(300,),
    )


def test_ghosts_layout_on_one_rank(tmp_path, lj_model_unshifted):
    _, plugin = compare(
        tmp_path, mlipdrive(lj_model_unshifted, "mode ghosts"), lj_cut(), 1, runs=(300,)
    )
    assert "mlipdrive: ghosts layout" in plugin.output


def test_tiled_decomposition_keeps_every_ghost(tmp_path, lj_model_unshifted):
    """comm_style tiled (rcb domains): no axis spans the box on every rank, so
    nothing folds (ghosts layout), and the run still equals lj/cut."""
    tiled = "comm_style tiled\nbalance 1.0 rcb\n"
    _, plugin = compare(
        tmp_path, tiled + mlipdrive(lj_model_unshifted), tiled + lj_cut(), 2, runs=(300,)
    )
    assert "mlipdrive: ghosts layout" in plugin.output


@pytest.fixture(scope="module")
def lj_two_layers(tmp_path_factory):
    """LJ declaring a range of two cutoffs: LAMMPS treats it as message passing."""
    path = tmp_path_factory.mktemp("models") / "lj-two-layers.pt"
    return export_lj_variant(path, interaction_range=2 * LJ_CUTOFF)


@pytest.mark.parametrize("ranks", [1, 2])
def test_message_passing_range_ghost_shell(tmp_path, lj_two_layers, ranks):
    _, plugin = compare(tmp_path, mlipdrive(lj_two_layers), lj_cut(), ranks, runs=(200,))
    if ranks > 1:
        # ghost shell = interaction range + skin, and ghost atoms' own pairs:
        # a message-passing model is never pruned
        assert "communication cutoff set to 18" in plugin.output
        assert "pair build: full/bin/ghost" in plugin.output
        _, between_ghosts, pruned = ghost_pairs(plugin.output)
        assert between_ghosts > 0 and not pruned


@pytest.fixture(scope="module")
def lj_strict_half(tmp_path_factory):
    """LJ written apart from ours, on a strict half list (models/lj/strict_half_lj.py)."""
    path = tmp_path_factory.mktemp("models") / "lj-strict-half.pt"
    strict_half_lj.export(str(path), cutoff=LJ_CUTOFF, sigma=LJ_SIGMA, epsilon=LJ_EPSILON)
    return path


@pytest.mark.parametrize("ranks, mode", [(2, "auto"), (3, "ghosts"), (4, "auto")])
@pytest.mark.parametrize("model", ["ours", "strict half list"])
def test_ghost_pairs_pruned_exactly(tmp_path, lj_model, lj_strict_half, model, ranks, mode):
    """A model whose range is its cutoff gets no pair between two ghosts, and
    the run still equals lj/cut; verify on: the kept System equals one built
    from scratch (both pruned)."""
    path = lj_model if model == "ours" else lj_strict_half
    lines = mlipdrive(path, f"mode {mode}", verify_option())
    _, plugin = compare(tmp_path, lines, lj_cut(shift=True), ranks, structure="triclinic", runs=(200,))
    assert f"mlipdrive: {expected_layout(plugin.output, mode=mode)} layout" in plugin.output
    assert "pair build: full/bin/ghost" not in plugin.output
    pairs, between_ghosts, pruned = ghost_pairs(plugin.output)
    assert pruned and between_ghosts == 0 and pairs > 0


def test_infinite_range_model_on_one_rank(tmp_path):
    model = export_lj_variant(tmp_path / "lj-inf.pt", interaction_range=float("inf"))
    _, plugin = compare(tmp_path, mlipdrive(model), lj_cut(), 1, runs=(200,))
    assert "mlipdrive: periodic layout" in plugin.output


@pytest.mark.parametrize("ranks", [1, 2])
def test_box_smaller_than_cutoff(tmp_path, lj_model_unshifted, ranks):
    # 10.5 Å box, 8.5 Å cutoff: atoms see several periodic images of each other
    compare(
        tmp_path, mlipdrive(lj_model_unshifted), lj_cut(), ranks,
        structure="triclinic", repeat=2, runs=(200,),
    )


def test_empty_sub_domains(tmp_path, lj_model_unshifted):
    # atoms only in the lower half of x: the last of three x-slabs has none
    lines = [
        "units metal",
        "boundary p p p",
        "processors 3 1 1",
        "lattice fcc 5.26",
        "region box block 0 4 0 2 0 2",
        "region slab block 0 2 0 2 0 2",
        "create_box 1 box",
        "create_atoms 1 region slab",
        "mass 1 39.948",
        "velocity all create 50 12345 loop geom",
        "PAIR",
        "neighbor 1.0 bin",
        "neigh_modify every 1 delay 0 check yes",
        "thermo_style custom step pe ke press etotal pxx pyy pzz pxy pxz pyz",
        "thermo_modify format float %.17g",
        "thermo 50",
        "fix 1 all nve",
        "run 200",
    ]
    text = "\n".join(lines) + "\n"
    reference = run_lmp(tmp_path / "reference", text.replace("PAIR", lj_cut()), 3)
    plugin = run_lmp(
        tmp_path / "plugin", text.replace("PAIR", mlipdrive(lj_model_unshifted)), 3
    )
    nlocal = next(line for line in plugin.output.splitlines() if line.startswith("Nlocal:"))
    assert nlocal.split()[-2:] == ["0", "min"], nlocal
    assert_thermo_close(plugin.thermo(), reference.thermo(), NVE_THERMO, SAME_MODEL)


@pytest.mark.parametrize("ranks", [1, 2])
def test_hybrid_overlay_with_null_type(tmp_path, lj_model_unshifted, ranks):
    """mlipdrive for type 1 - type 1 pairs, lj/cut for the rest; all lj/cut in the reference."""
    hybrid = "\n".join(
        [
            f"pair_style hybrid/overlay mlipdrive {lj_model_unshifted} lj/cut {LJ_CUTOFF}",
            "pair_coeff * * mlipdrive Ar NULL",
            f"pair_coeff 1 2 lj/cut {LJ_EPSILON} {LJ_SIGMA}",
            f"pair_coeff 2 2 lj/cut {LJ_EPSILON} {LJ_SIGMA}",
        ]
    )
    reference = f"pair_style lj/cut {LJ_CUTOFF}\npair_coeff * * {LJ_EPSILON} {LJ_SIGMA}"
    compare(tmp_path, hybrid, reference, ranks, runs=(200,), types=2)


# LAMMPS unit style -> (metatomic length unit, energy unit, mass scale, time step)
UNIT_STYLES = {
    "real": ("angstrom", "kcal/mol", 1.0, 1.0),
    "electron": ("Bohr", "Hartree", 1.0, 1.0),
    "si": ("m", "J", 1.66053906660e-27, 1e-15),
}


@pytest.mark.parametrize("style", sorted(UNIT_STYLES))
def test_unit_styles(tmp_path, lj_model_unshifted, style):
    length_unit, energy_unit, mass_scale, timestep = UNIT_STYLES[style]
    length = unit_conversion_factor("angstrom", length_unit)
    energy = unit_conversion_factor("eV", energy_unit)
    lines = [
        f"units {style}",
        "boundary p p p",
        f"lattice fcc {5.26 * length!r}",
        "region box prism 0 3 0 3 0 3 1 1 -1",
        "create_box 1 box",
        "create_atoms 1 box",
        f"mass 1 {39.948 * mass_scale!r}",
        "velocity all create 50 12345 loop geom",
        f"displace_atoms all random {0.1 * length!r} {0.1 * length!r} {0.1 * length!r} 42 units box",
        "PAIR",
        f"neighbor {1.0 * length!r} bin",
        "neigh_modify every 1 delay 0 check yes",
        f"timestep {timestep!r}",
        "thermo_style custom step pe ke press etotal pxx pyy pzz pxy pxz pyz",
        "thermo_modify format float %.17g",
        "thermo 50",
        "fix 1 all nve",
        "run 100",
    ]
    text = "\n".join(lines) + "\n"
    reference_pair = (
        f"pair_style lj/cut {LJ_CUTOFF * length!r}\n"
        f"pair_coeff 1 1 {LJ_EPSILON * energy!r} {LJ_SIGMA * length!r}"
    )
    reference = run_lmp(tmp_path / "reference", text.replace("PAIR", reference_pair))
    plugin = run_lmp(tmp_path / "plugin", text.replace("PAIR", mlipdrive(lj_model_unshifted)))
    assert f"units {style} ({length_unit}, {energy_unit})" in plugin.output
    assert_thermo_close(plugin.thermo(), reference.thermo(), NVE_THERMO, SAME_MODEL)


PER_ATOM = """
compute pe_atom all pe/atom
compute pe_sum all reduce sum c_pe_atom
compute stress all stress/atom NULL virial
compute stress_sum all reduce sum c_stress[1] c_stress[2] c_stress[3] c_stress[4] c_stress[5] c_stress[6]
compute pressure all pressure NULL virial
variable vxx equal -c_stress_sum[1]/vol
variable vyy equal -c_stress_sum[2]/vol
variable vzz equal -c_stress_sum[3]/vol
variable vxy equal -c_stress_sum[4]/vol
variable vxz equal -c_stress_sum[5]/vol
variable vyz equal -c_stress_sum[6]/vol
thermo_style custom step pe c_pe_sum c_pressure[1] v_vxx c_pressure[2] v_vyy c_pressure[3] v_vzz c_pressure[4] v_vxy c_pressure[5] v_vxz c_pressure[6] v_vyz
thermo_modify format float %.17g
dump atoms all custom 50 atoms.dump id c_pe_atom c_stress[1] c_stress[2] c_stress[3] c_stress[4] c_stress[5] c_stress[6]
dump_modify atoms format float %.17g sort id
"""


def per_atom_script(pair_lines):
    script = nve_script(pair_lines, structure="triclinic", runs=(100,))
    return script.replace("fix 1 all nve", PER_ATOM + "\nthermo 50\nfix 1 all nve")


@pytest.mark.parametrize("ranks", [1, 2])
def test_per_atom_energy_and_virial_sum_to_totals(tmp_path, lj_model_unshifted, ranks):
    plugin = run_lmp(tmp_path / "plugin", per_atom_script(mlipdrive(lj_model_unshifted)), ranks)
    thermo = plugin.thermo()
    scale = np.abs(thermo["PotEng"]).max()
    assert np.abs(thermo["c_pe_sum"] - thermo["PotEng"]).max() <= 1e-12 * scale
    pressure_scale = max(np.abs(thermo[f"c_pressure[{k}]"]).max() for k in range(1, 4))
    for k, name in enumerate(["vxx", "vyy", "vzz", "vxy", "vxz", "vyz"], start=1):
        error = np.abs(thermo[f"v_{name}"] - thermo[f"c_pressure[{k}]"]).max()
        assert error <= 1e-10 * pressure_scale, (name, error)

    # and each atom's share equals lj/cut's (half of each pair to each atom)
    reference = run_lmp(tmp_path / "reference", per_atom_script(lj_cut()), ranks)
    assert reference.returncode == 0
    ours = read_dump(tmp_path / "plugin" / "atoms.dump")
    theirs = read_dump(tmp_path / "reference" / "atoms.dump")
    for column in theirs:
        scale = np.abs(theirs[column]).max()
        assert np.abs(ours[column] - theirs[column]).max() <= SAME_MODEL * scale, column


@pytest.mark.parametrize(
    "keywords",
    [
        [],
        ["settings", "turbo"],
        ["settings", "turbo", "threads", "1", "dtype", "float64", "check_consistency", "on"],
        ["graph_optimize", "off", "fusion_strategy", "STATIC:2,DYNAMIC:3", "skin", "0.5"],
    ],
    ids=["default", "turbo", "turbo+overrides", "default+overrides"],
)
def test_settings_agree_with_python_driver(tmp_path, lj_model_unshifted, keywords):
    """The plugin prints the same settings table as `mlipdrive info` for the same options."""
    cli = [sys.executable, "-m", "mlipdrive.cli", "info", str(lj_model_unshifted)]
    pairs = dict(zip(keywords[::2], keywords[1::2]))
    for key, value in pairs.items():
        cli += ["--settings", value] if key == "settings" else ["--" + key.replace("_", "-"), value]
    info = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    python_table = settings_table(info.stdout, "settings")

    script = "\n".join(
        [
            "units metal",
            lj_lattice_lines("orthogonal", 2),
            mlipdrive(lj_model_unshifted, *keywords),
            "run 0",
        ]
    )
    plugin = run_lmp(tmp_path, script)
    plugin_table = settings_table(plugin.output, "mlipdrive: settings")
    assert plugin_table == python_table
    assert len(plugin_table) >= 9
    # laid out alike too: the values in one column, however long the name
    rows = [line for line in plugin.output.splitlines()
            if line.startswith("  ") and line.split()[0] in plugin_table]
    assert rows == [line for line in info.stdout.splitlines()
                    if line.startswith("  ") and line.split()[0] in python_table]


def test_numbered_style_names_under_hybrid_overlay(tmp_path, lj_model_unshifted):
    """metatomic's mlipdrive_1, mlipdrive_2 spellings: two instances, one scaled by 0.5,
    give 1.5 times lj/cut."""
    plugin = "\n".join(
        [
            f"pair_style hybrid/overlay mlipdrive_1 {lj_model_unshifted} mlipdrive_2 {lj_model_unshifted} scale 0.5",
            "pair_coeff * * mlipdrive_1 Ar",
            "pair_coeff * * mlipdrive_2 Ar",
        ]
    )
    reference = "\n".join(
        [
            f"pair_style hybrid/scaled 1.0 lj/cut {LJ_CUTOFF} 0.5 lj/cut {LJ_CUTOFF}",
            f"pair_coeff * * lj/cut 1 {LJ_EPSILON} {LJ_SIGMA}",
            f"pair_coeff * * lj/cut 2 {LJ_EPSILON} {LJ_SIGMA}",
        ]
    )
    compare(tmp_path, plugin, reference, 1, runs=(50,))
