"""``pair_style mlipdrive`` takes what ``pair_style metatomic`` takes.

metatomic's LAMMPS example (``examples/PACKAGES/metatomic/in.metatomic``) runs
unchanged but for the style name, also with every metatomic keyword added, and
gives ``lj/cut``'s run; each new keyword on 1 and 2 ranks gives, on the
structure LAMMPS evaluated, what ``metatomic_ase.MetatomicCalculator`` gives
with the same option: variants, non-conservative heads, scale, the per-atom
energy uncertainty (``fix pair``) and its warning, which says what Python's says.
"""

import re

import ase
import ase.calculators.calculator
import ase.data
import numpy as np
import pytest
from lammps_testing import (
    assert_thermo_close,
    ghost_pairs,
    lower_triangular,
    read_dump,
    run_lmp,
    write_data,
)
from metatomic.torch import ModelOutput, load_atomistic_model
from metatomic_ase import MetatomicCalculator
from parity_models import export_parity_argon

import mlipdrive
from mlipdrive.outputs import OutputChoiceError
from structures import SAME_MODEL, argon, copper_aluminium
from mlipdrive.uncertainty import UncertaintyWarning, check_uncertainty

from export_lj import export_lj  # noqa: E402  (models/lj, on the path through conftest)

NKTV2P_METAL = 1.6021765e6  # LAMMPS's pressure x volume -> eV in units metal
ARGON_MASS = 39.948

# keywords of pair_style metatomic -> (ours, the same for metatomic's ASE
# calculator, and the factor on its results)
OPTIONS = {
    "default": ("", {}, 1.0),
    "variant": ("variant strong", {"variants": {"energy": "strong"}}, 1.0),
    "variant/energy": ("variant/energy strong", {"variants": {"energy": "strong"}}, 1.0),
    "non_conservative": ("non_conservative on", {"non_conservative": True}, 1.0),
    # metatomic's one-head values: the other quantity from the energy's gradients
    "non_conservative forces": ("non_conservative forces", {"non_conservative": "forces"}, 1.0),
    "non_conservative stress": ("non_conservative stress", {"non_conservative": "stress"}, 1.0),
    "non_conservative, variant": (
        "non_conservative on variant strong",
        {"non_conservative": True, "variants": {"energy": "strong"}}, 1.0,
    ),
    "variant/non_conservative_*": (
        "non_conservative on variant/non_conservative_forces strong "
        "variant/non_conservative_stress strong",
        {"non_conservative": True,
         "variants": {"non_conservative_force": "strong", "non_conservative_stress": "strong"}},
        1.0,
    ),
    "scale": ("scale 0.5", {}, 0.5),
}


@pytest.fixture(scope="module")
def parity_model(tmp_path_factory):
    return export_parity_argon(tmp_path_factory.mktemp("models") / "parity.pt")


def structure(compression=1.0):
    """108 argon atoms, rattled in a strained cell (LAMMPS's restricted box);
    ``compression`` scales the cell (0.82: far from equilibrium)."""
    atoms = argon(repeat=3, rattle=0.1, strain=0.03, seed=11)
    atoms.set_cell(atoms.cell.array * compression, scale_atoms=True)
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    return ase.Atoms(atoms.numbers, positions=positions, cell=cell, pbc=True)


def evaluate(tmp_path, model, keywords, ranks, atoms, uncertainty=False, check=True):
    """``run 0`` of ``atoms`` with these keywords: (results by atom ID, lmp output)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    elements = sorted(set(atoms.numbers))
    types = [elements.index(z) + 1 for z in atoms.numbers]
    masses = {t: ase.data.atomic_masses[z] for t, z in enumerate(elements, start=1)}
    write_data(tmp_path / "data.lmp", atoms.cell.array, atoms.positions, types, masses)
    symbols = " ".join(ase.data.chemical_symbols[z] for z in elements)
    fix = "fix U all pair 1 mlipdrive energy_uncertainty 0" if uncertainty else ""
    script = f"""
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlipdrive {model} {keywords}
pair_coeff * * {symbols}
compute pe all pe/atom
compute pv all pressure NULL virial
{fix}
dump d all custom 1 out.dump id x y z fx fy fz c_pe {'f_U' if uncertainty else ''}
dump_modify d format float %.17g sort id
thermo_style custom step pe vol c_pv[*]
thermo_modify format float %.17g
run 0
"""
    result = run_lmp(tmp_path, script, ranks, check=check)
    if result.returncode != 0:
        return None, result
    thermo = result.runs()[0]
    dump = read_dump(tmp_path / "out.dump")
    virial = np.array([thermo[f"c_pv[{k}]"][0] for k in range(1, 7)]) * thermo["Volume"][0]
    return {
        "positions": np.stack([dump["x"], dump["y"], dump["z"]], axis=1),
        "forces": np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1),
        "energies": dump["c_pe"],
        "energy": thermo["PotEng"][0],
        "virial": virial / NKTV2P_METAL,  # xx yy zz xy xz yz, eV
        "uncertainty": dump.get("f_U"),
    }, result


def reference(model, atoms, positions, options, extensions=None):
    """metatomic's ASE calculator on the structure LAMMPS evaluated."""
    evaluated = ase.Atoms(atoms.numbers, positions=positions, cell=atoms.cell, pbc=True)
    calculator = MetatomicCalculator(str(model), uncertainty_threshold=None,
                                     extensions_directory=extensions, **options)
    calculator.calculate(evaluated, ["energy", "energies", "forces", "stress"],
                         ase.calculators.calculator.all_changes)
    results = calculator.results
    virial = -np.asarray(results["stress"])[[0, 1, 2, 5, 4, 3]] * evaluated.get_volume()
    return {"energy": results["energy"], "energies": results["energies"],
            "forces": results["forces"], "virial": virial}


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_keyword_matches_metatomic_given_the_same_option(tmp_path, parity_model, name, ranks):
    keywords, options, factor = OPTIONS[name]
    atoms = structure()
    ours, _ = evaluate(tmp_path, parity_model, keywords, ranks, atoms)
    expected = reference(parity_model, atoms, ours["positions"], options)
    for key in ("energy", "energies", "forces", "virial"):
        np.testing.assert_allclose(ours[key], factor * expected[key], rtol=0, atol=10 * SAME_MODEL,
                                   err_msg=key)


@pytest.mark.parametrize("name", ["non_conservative", "non_conservative forces", "non_conservative stress"])
def test_heads_in_the_ghosts_layout(tmp_path, parity_model, name):
    """2 ranks, every ghost kept as an atom: the heads still see the box's volume."""
    keywords, options, _ = OPTIONS[name]
    atoms = structure()
    ours, result = evaluate(tmp_path, parity_model, keywords + " mode ghosts", 2, atoms)
    assert "mlipdrive: ghosts layout" in result.output
    expected = reference(parity_model, atoms, ours["positions"], options)
    for key in ("energy", "energies", "forces", "virial"):
        np.testing.assert_allclose(ours[key], expected[key], rtol=0, atol=10 * SAME_MODEL, err_msg=key)


@pytest.mark.parametrize("ranks", [1, 2])
def test_scale_on_every_model_family(tmp_path, model_family, ranks):
    """scale 0.5 halves what metatomic's calculator gives, on a trained model too."""
    atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03)
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    atoms = ase.Atoms(atoms.numbers, positions=positions, cell=cell, pbc=True)
    extensions = model_family.extensions
    keywords = "scale 0.5" + (f" extensions {extensions}" if extensions else "")
    ours, _ = evaluate(tmp_path, model_family.path, keywords, ranks, atoms)
    expected = reference(model_family.path, atoms, ours["positions"], {},
                         None if extensions is None else str(extensions))
    volume = atoms.get_volume()
    assert abs(ours["energy"] - 0.5 * expected["energy"]) / len(atoms) <= model_family.energy_per_atom
    assert np.abs(ours["forces"] - 0.5 * expected["forces"]).max() <= model_family.forces
    assert np.abs(ours["virial"] - 0.5 * expected["virial"]).max() / volume <= model_family.stress


def range_is_cutoff(family) -> bool:
    """Whether the model declares its largest neighbour-list cutoff as its range."""
    extensions = None if family.extensions is None else str(family.extensions)
    model = load_atomistic_model(str(family.path), extensions_directory=extensions)
    cutoff = max(options.cutoff for options in model.requested_neighbor_lists())
    return model.capabilities().interaction_range <= cutoff


@pytest.mark.parametrize("ranks, mode", [(2, "auto"), (4, "ghosts")])
def test_ghost_pairs_pruned_only_without_message_passing(tmp_path, model_family, ranks, mode):
    """Pairs between two ghosts are left out for a model whose range is its
    cutoff (SOAP-BPNN) and kept for message passing (MACE, PET); either way
    the result is metatomic's calculator's. (GAP cannot run in LAMMPS: it asks
    for no neighbour list, tests/model_kinds.py.)"""
    atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03)
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    atoms = ase.Atoms(atoms.numbers, positions=positions, cell=cell, pbc=True)
    extensions = model_family.extensions
    keywords = f"mode {mode} verify on" + (f" extensions {extensions}" if extensions else "")
    ours, result = evaluate(tmp_path, model_family.path, keywords, ranks, atoms)
    _, between_ghosts, pruned = ghost_pairs(result.output)
    short_range = range_is_cutoff(model_family)
    assert pruned == short_range and (between_ghosts == 0) == short_range
    expected = reference(model_family.path, atoms, ours["positions"], {},
                         None if extensions is None else str(extensions))
    volume = atoms.get_volume()
    assert abs(ours["energy"] - expected["energy"]) / len(atoms) <= model_family.energy_per_atom
    assert np.abs(ours["energies"] - expected["energies"]).max() <= model_family.energies_limit(expected["energies"])
    assert np.abs(ours["forces"] - expected["forces"]).max() <= model_family.forces
    assert np.abs(ours["virial"] - expected["virial"]).max() / volume <= model_family.stress


def lammps_warning(output: str) -> str:
    lines = [line for line in output.splitlines() if "energy uncertainty above" in line]
    assert len(lines) == 1, output[-3000:]
    return re.match(r"WARNING: pair_style mlipdrive: (.*) \(\S+:\d+\)$", lines[0]).group(1)


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("keywords, output", [
    ("", "energy_uncertainty"),
    ("variant/energy_uncertainty strong", "energy_uncertainty/strong"),
])
def test_uncertainty_per_atom_and_warning(tmp_path, parity_model, ranks, keywords, output):
    """Far from equilibrium: fix pair reads the model's per-atom uncertainty (of
    the chosen variant), and the warning says exactly what Python's check says
    (atom IDs, step 0)."""
    atoms = structure(compression=0.82)
    ours, result = evaluate(tmp_path, parity_model, keywords, ranks, atoms, uncertainty=True)
    evaluated = ase.Atoms(atoms.numbers, positions=ours["positions"], cell=atoms.cell, pbc=True)
    expected = MetatomicCalculator(str(parity_model)).run_model(
        evaluated, {output: ModelOutput(unit="eV", sample_kind="atom")}
    )[output].block().values.detach().numpy().reshape(-1)
    np.testing.assert_allclose(ours["uncertainty"], expected, rtol=0, atol=SAME_MODEL)
    assert (expected > 0.1).sum() > 5
    with pytest.warns(UncertaintyWarning) as python:
        check_uncertainty(expected, 0.1, "warn", "step 0", labels=np.arange(1, len(atoms) + 1))
    assert lammps_warning(result.output) == str(python[0].message)


@pytest.mark.parametrize("ranks", [1, 2])
def test_uncertainty_quiet_near_equilibrium_and_stop(tmp_path, parity_model, ranks):
    _, quiet = evaluate(tmp_path / "near", parity_model, "", ranks, structure(), uncertainty=True)
    assert "energy uncertainty above" not in quiet.output
    _, stopped = evaluate(tmp_path / "far", parity_model, "uncertainty_action stop", ranks,
                          structure(compression=0.82), check=False)
    assert stopped.returncode != 0
    assert "ERROR: pair_style mlipdrive (uncertainty_action stop): energy uncertainty above" in stopped.output


def test_uncertainty_threshold_off(tmp_path, parity_model):
    _, result = evaluate(tmp_path, parity_model, "uncertainty_threshold off", 1,
                         structure(compression=0.82))
    assert "energy uncertainty above" not in result.output
    assert "uncertainty check on" not in result.output


@pytest.mark.parametrize("remap, layout", [("on", "periodic"), ("off", "ghosts")])
def test_remap_pairs_chooses_the_layout(tmp_path, parity_model, remap, layout):
    atoms = structure()
    ours, result = evaluate(tmp_path, parity_model, f"remap_pairs {remap}", 1, atoms)
    assert f"mlipdrive: {layout} layout" in result.output
    expected = reference(parity_model, atoms, ours["positions"], {})
    np.testing.assert_allclose(ours["forces"], expected["forces"], rtol=0, atol=10 * SAME_MODEL)


def test_a_missing_variant_says_what_python_says(tmp_path, parity_model):
    _, result = evaluate(tmp_path, parity_model, "variant pbe0", 1, structure(), check=False)
    with pytest.raises(OutputChoiceError) as python:
        mlipdrive.load(parity_model, settings={"variant": "pbe0"})
    assert result.returncode != 0
    assert f"ERROR: pair_style mlipdrive: {python.value}" in result.output


@pytest.mark.parametrize("value", ["on", "stress"])
def test_non_conservative_refuses_a_per_atom_virial(tmp_path, parity_model, value):
    data = structure()
    write_data(tmp_path / "data.lmp", data.cell.array, data.positions, [1] * len(data), {1: ARGON_MASS})
    script = f"""
units metal
read_data data.lmp
pair_style mlipdrive {parity_model} non_conservative {value}
pair_coeff * * Ar
compute s all stress/atom NULL virial
dump d all custom 1 out.dump id c_s[1]
run 0
"""
    result = run_lmp(tmp_path, script, check=False)
    assert result.returncode != 0
    assert f"non_conservative {value} gives no per-atom virial" in result.error()


# ------------------------------------------------------------ metatomic's example

# examples/PACKAGES/metatomic/in.metatomic of metatomic's LAMMPS, as it is there
METATOMIC_EXAMPLE = """units metal
boundary p p p

atom_style atomic
lattice fcc 3.6
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box

labelmap atom 1 Ni
mass Ni 58.693

velocity all create 123 42

pair_style metatomic nickel-lj.pt
# pair_style metatomic nickel-lj-extensions.pt extensions collected-extensions/
pair_coeff * * 28

timestep 0.001
fix 1 all npt temp 123 123 $(100 * dt) iso 0 0 $(1000 * dt) drag 1.0

thermo 10
thermo_style custom step temp pe etotal press vol

# dump 1 all atom 10 dump.metatomic

run 100
"""
# the parameters of the example's nickel-lj.pt (its create-lj-nickel.py)
NICKEL = dict(sigma=1.5808, epsilon=0.1729, cutoff=6.5)
# every keyword of pair_style metatomic, with a value that keeps the model as it is
METATOMIC_KEYWORDS = (
    "device cpu extensions . check_consistency on non_conservative off scale 1.0 "
    "uncertainty_threshold 0.1 remap_pairs on variant off variant/energy off "
    "variant/energy_uncertainty off variant/non_conservative_forces off "
    "variant/non_conservative_stress off"
)
THERMO = ["Temp", "PotEng", "TotEng", "Press", "Volume"]


@pytest.mark.parametrize("ranks, keywords", [(1, ""), (1, METATOMIC_KEYWORDS), (2, METATOMIC_KEYWORDS)])
def test_metatomics_example_runs_unchanged(tmp_path, ranks, keywords):
    """in.metatomic with 'metatomic' -> 'mlipdrive' (and every metatomic keyword
    added) runs, and its NPT run is lj/cut's with the same parameters."""
    (tmp_path / "ours").mkdir()
    export_lj(tmp_path / "ours" / "nickel-lj.pt", shifted=False, elements=("Ni",), **NICKEL)
    ours_script = METATOMIC_EXAMPLE.replace("pair_style metatomic nickel-lj.pt",
                                            f"pair_style metatomic nickel-lj.pt {keywords}")
    ours_script = ours_script.replace("metatomic", "mlipdrive")
    reference_script = METATOMIC_EXAMPLE.replace(
        "pair_style metatomic nickel-lj.pt",
        f"pair_style lj/cut {NICKEL['cutoff']}\npair_modify shift no",
    ).replace("pair_coeff * * 28", f"pair_coeff * * {NICKEL['epsilon']} {NICKEL['sigma']}")
    ours = run_lmp(tmp_path / "ours", ours_script, ranks)
    theirs = run_lmp(tmp_path / "lj", reference_script, ranks)
    assert ours.thermo()["Step"][-1] == 100
    # thermo prints 8 significant digits
    assert_thermo_close(ours.thermo(), theirs.thermo(), THERMO, rtol=1e-6)


def test_two_models_in_one_run_as_metatomic_1_and_2(tmp_path, parity_model):
    """metatomic's pair_style metatomic_1 / metatomic_2 under hybrid/overlay: two
    mlipdrive instances, here the LJ and its 'strong' variant, add up to lj/cut
    with both epsilons summed."""
    from parity_models import LJ_EPSILON, STRONG

    atoms = structure()
    write_data(tmp_path / "data.lmp", atoms.cell.array, atoms.positions, [1] * len(atoms),
               {1: ARGON_MASS})
    lines = [
        "units metal", "read_data data.lmp",
        f"pair_style hybrid/overlay mlipdrive {parity_model} mlipdrive {parity_model} variant strong",
        "pair_coeff * * mlipdrive 1 Ar", "pair_coeff * * mlipdrive 2 Ar",
        "thermo_style custom step pe press", "thermo_modify format float %.17g", "run 0",
        "pair_style lj/cut 8.5", f"pair_coeff * * {(1 + STRONG) * LJ_EPSILON!r} 3.405", "run 0",
    ]
    runs = run_lmp(tmp_path, "\n".join(lines)).runs()
    for column in ("PotEng", "Press"):
        assert runs[0][column][0] == pytest.approx(runs[1][column][0], rel=1e-12)
