"""Each inference setting's effect inside LAMMPS, observed, and the same as in Python.

The plugin reports what it observes after applying the settings (torch's thread
count, the evaluation dtype, the graph executor's state); the tests check those
and the numbers the settings change, against the Python definition of each rule
(``mlipdrive.settings``) and the Python driver on the same model.
"""

import os
import re

import pytest
from lammps_testing import export_lj_reduction_marked, lj_lattice_lines, run_lmp, write_data

import mlipdrive
from mlipdrive.settings import torch_threads
from structures import FLOAT32_ENERGY_PER_ATOM, copper_aluminium

MASSES = {1: 63.546, 2: 26.9815385}


def lj_script(model, *keywords, after="run 0"):
    return "\n".join(
        [
            "units metal",
            lj_lattice_lines("orthogonal", 2),
            f"pair_style mlipdrive {model} {' '.join(keywords)}",
            "pair_coeff * * Ar",
            "thermo_style custom step pe",
            "thermo_modify format float %.17g",
            after,
        ]
    )


def reported(output: str, pattern: str) -> str:
    match = re.search(pattern, output)
    assert match, (pattern, output[-3000:])
    return match.group(1)


@pytest.mark.parametrize("requested", [1, 2])
def test_threads_n_gives_n(tmp_path, lj_model, requested):
    output = run_lmp(tmp_path, lj_script(lj_model, "threads", str(requested))).output
    assert int(reported(output, r"torch threads (\d+)")) == requested


@pytest.mark.parametrize("ranks", [1, 2])
def test_threads_0_follows_the_python_rule(tmp_path, lj_model, ranks):
    """Without OMP_NUM_THREADS: usable cores // ranks on the node, as torch_threads says."""
    output = run_lmp(tmp_path, lj_script(lj_model), ranks, unset=["OMP_NUM_THREADS"]).output
    environ = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    assert int(reported(output, r"torch threads (\d+)")) == torch_threads(0, ranks, environ)


def test_threads_0_takes_omp_num_threads(tmp_path, lj_model):
    output = run_lmp(tmp_path, lj_script(lj_model)).output  # tests run with OMP_NUM_THREADS=1
    assert int(reported(output, r"torch threads (\d+)")) == torch_threads(0, 1, {"OMP_NUM_THREADS": "1"})


def test_dtype_float32_evaluates_in_float32(tmp_path, lj_model):
    """float32: the plugin reports it, and the energy moves by float32 rounding only,
    exactly as the Python driver's float32 evaluation does."""
    energies = {}
    for dtype in ("float64", "float32"):
        result = run_lmp(tmp_path / dtype, lj_script(lj_model, "dtype", dtype))
        assert reported(result.output, r"dtype (float\d\d)") == dtype
        energies[dtype] = result.runs()[-1]["PotEng"][0]
    difference = abs(energies["float32"] - energies["float64"]) / 32  # atoms
    assert 0 < difference < FLOAT32_ENERGY_PER_ATOM, energies


@pytest.mark.parametrize("value", ["on", "off"])
def test_graph_optimize_sets_the_executor(tmp_path, lj_model, value):
    output = run_lmp(tmp_path, lj_script(lj_model, "graph_optimize", value)).output
    assert reported(output, r"graph executor optimisation (on|off)") == value


def test_atom_energy_sum_skips_the_model_reduction(tmp_path):
    """A model whose total is 1 eV above the sum of its atoms shows which one was used."""
    model = export_lj_reduction_marked(tmp_path / "marked.pt")
    energies = {}
    for value in ("on", "off"):
        result = run_lmp(tmp_path / value, lj_script(model, "atom_energy_sum", value))
        energies[value] = result.runs()[-1]["PotEng"][0]
    assert energies["off"] - energies["on"] == pytest.approx(1.0, abs=1e-9)
    # the Python driver makes the same choice
    potential = {value: mlipdrive.load(model, settings={"atom_energy_sum": value == "on"}) for value in energies}
    assert potential["off"].energy_output().sample_kind == "system"
    assert potential["on"].energy_output().sample_kind == "atom"


def test_tf32_is_reported_as_a_no_op_on_cpu(tmp_path, lj_model):
    output = run_lmp(tmp_path, lj_script(lj_model, "tf32", "on")).output
    assert "mlipdrive: tf32: no effect on CPU" in output
    assert "tf32: no effect on CPU" in mlipdrive.load(lj_model, settings={"tf32": True}).notes


def test_fixed_composition_does_not_freeze_types_in_lammps(tmp_path, mace_model):
    """LAMMPS changes types without telling the pair style's caches (set type here):
    with fixed_composition on, the energy after the change is still that of a run
    that starts from the changed types, and the plugin says the setting is unused."""
    atoms = copper_aluminium(repeat=2, rattle=0.05, strain=0.0, seed=4)
    types = [1 if z == 29 else 2 for z in atoms.numbers]
    retyped = [2 if index < 4 else t for index, t in enumerate(types)]
    write_data(tmp_path / "start.data", atoms.cell.array, atoms.positions, types, MASSES)
    write_data(tmp_path / "retyped.data", atoms.cell.array, atoms.positions, retyped, MASSES)

    def script(data, change=""):
        return "\n".join(
            [
                "units metal",
                f"read_data {data}",
                f"pair_style mlipdrive {mace_model} fixed_composition on",
                "pair_coeff * * Cu Al",
                "thermo_style custom step pe",
                "thermo_modify format float %.17g",
                "run 0",
                change,
                "run 0",
            ]
        )

    changed = run_lmp(tmp_path / "changed", script(tmp_path / "start.data", "set atom 1*4 type 2"))
    fresh = run_lmp(tmp_path / "fresh", script(tmp_path / "retyped.data"))
    assert "fixed_composition: not used, atom types are read at every step" in changed.output
    before, after = [table["PotEng"][-1] for table in changed.runs()]
    assert after != before
    assert after == pytest.approx(fresh.runs()[-1]["PotEng"][-1], rel=1e-12)
