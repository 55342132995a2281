"""Inference settings: presets, and for each setting a test that observes its effect
(so that a setting the driver silently ignores fails its test)."""

import dataclasses
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from export_lj import export_lj
from lammps_testing import WrappedArgon, save_argon_variant
from metatensor.torch import Labels, TensorMap
from metatomic.torch import ModelOutput, System

import mlipdrive
from mlipdrive.decomposition import _share_cores
from mlipdrive.potential import InvalidInput
from mlipdrive.settings import (
    ON_OFF_WORDS,
    SETTINGS,
    InferenceSettings,
    cpp_header,
    parse_on_off,
    resolve,
    torch_threads,
)
from structures import FLOAT32_ENERGY_PER_ATOM, FLOAT32_FORCES, argon, copper_aluminium

TORCH_FUSION_DEFAULT = [("STATIC", 2), ("DYNAMIC", 10)]


@pytest.fixture(autouse=True)
def restore_torch_switches():
    """Loading a model sets process-wide torch switches: put them back after each test."""
    threads = torch.get_num_threads()
    optimize = torch._C._get_graph_executor_optimize()
    yield
    torch.set_num_threads(threads)
    torch._C._set_graph_executor_optimize(optimize)
    torch.jit.set_fusion_strategy(TORCH_FUSION_DEFAULT)


def compute(potential, atoms):
    return potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)


class ModelRecorder:
    """Stands in for a Potential's model and records every call the engine makes."""

    def __init__(self, model):
        self.model = model
        self.calls = []

    def __call__(self, systems, options, check_consistency):
        self.calls.append((systems, options, check_consistency))
        return self.model(systems, options, check_consistency)


def recording(potential) -> ModelRecorder:
    potential.model = ModelRecorder(potential.model)
    return potential.model


# ---------------------------------------------------------------------- the table


def test_table_and_dataclass_agree():
    fields = [field.name for field in dataclasses.fields(InferenceSettings)]
    assert fields == [setting.name for setting in SETTINGS]
    assert InferenceSettings() == InferenceSettings.preset("default")
    header = cpp_header()
    for setting in SETTINGS:
        assert f" {setting.name} = " in header


def test_presets_and_overrides():
    turbo = InferenceSettings.preset("turbo")
    assert turbo.dtype == "float32" and turbo.fixed_composition
    assert resolve({"preset": "turbo", "dtype": "float64"}).dtype == "float64"
    assert InferenceSettings.from_strings(tf32="on", threads="2").threads == 2
    with pytest.raises(ValueError, match="unknown settings preset"):
        InferenceSettings.preset("fast")
    with pytest.raises(ValueError, match="unknown setting"):
        resolve({"float": 32})
    # removed: it gained nothing on the one model TorchScript could freeze
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['freeze'\]"):
        resolve({"freeze": True})
    with pytest.raises(ValueError, match="expected on/off"):
        InferenceSettings.from_strings(tf32="maybe")
    with pytest.raises(ValueError, match="fusion_strategy must look like"):
        InferenceSettings(fusion_strategy="FAST")


def test_on_off_words():
    for word, value in ON_OFF_WORDS.items():
        assert parse_on_off(word.upper(), "x") is value
    with pytest.raises(ValueError, match="expected on/off for -o verbose, got 'maybe'"):
        parse_on_off("maybe", "-o verbose")


# every field on its own, with a value other than its default
SINGLE_FIELDS = [
    {"dtype": "float32"},
    {"dtype": "float64"},
    {"threads": 1},
    {"graph_optimize": False},
    {"fusion_strategy": "STATIC:2,DYNAMIC:4"},
    {"skin": 0.0},
    {"check_consistency": True},
    {"fixed_composition": True},
    {"atom_energy_sum": True},
    {"tf32": True},
]


@pytest.mark.parametrize("overrides", SINGLE_FIELDS, ids=lambda o: next(iter(o)))
@pytest.mark.parametrize("model_fixture,structure", [("lj_model", argon), ("mace_model", copper_aluminium)])
def test_each_setting_alone_keeps_results(request, model_fixture, structure, overrides):
    """Each setting leaves the results as they were (to float32 for dtype float32);
    the tests below check that it does what it says."""
    path = request.getfixturevalue(model_fixture)
    atoms = structure(repeat=2, seed=7)
    reference = compute(mlipdrive.load(path), atoms)
    potential = mlipdrive.load(path, settings=overrides)
    assert potential.settings == InferenceSettings.preset("default", **overrides)
    results = compute(potential, atoms)
    float32 = overrides.get("dtype") == "float32"
    energy_tolerance = FLOAT32_ENERGY_PER_ATOM * len(atoms) if float32 else 1e-10 * abs(reference.energy)
    forces_tolerance = FLOAT32_FORCES if float32 else 1e-10
    assert abs(results.energy - reference.energy) < energy_tolerance
    np.testing.assert_allclose(results.forces, reference.forces, rtol=0, atol=forces_tolerance)


@pytest.mark.parametrize("model_fixture,structure", [("lj_model", argon), ("mace_model", copper_aluminium)])
def test_turbo_close_to_default(request, model_fixture, structure):
    path = request.getfixturevalue(model_fixture)
    atoms = structure(repeat=2, seed=8)
    default = compute(mlipdrive.load(path), atoms)
    results = compute(mlipdrive.load(path, settings="turbo"), atoms)
    assert abs(results.energy - default.energy) / len(atoms) < FLOAT32_ENERGY_PER_ATOM
    np.testing.assert_allclose(results.forces, default.forces, rtol=0, atol=FLOAT32_FORCES)
    np.testing.assert_allclose(results.virial, default.virial, rtol=0, atol=FLOAT32_FORCES * 10)


# ---------------------------------------------------------------------- threads


def test_threads_n_gives_n_threads(lj_model):
    # 3: neither the tests' 1 thread nor this machine's core count
    mlipdrive.load(lj_model, settings={"threads": 3})
    assert torch.get_num_threads() == 3
    mlipdrive.load(lj_model, settings={"threads": 1})
    assert torch.get_num_threads() == 1


def test_threads_zero_rule():
    eight = range(8)
    assert torch_threads(5, 4, {"OMP_NUM_THREADS": "2"}, eight) == 5  # N > 0 wins
    assert torch_threads(0, 4, {"OMP_NUM_THREADS": "3"}, eight) == 3  # then OMP_NUM_THREADS
    assert torch_threads(0, 1, {}, eight) == 8  # then cores // ranks on this node
    assert torch_threads(0, 3, {}, eight) == 2
    assert torch_threads(0, 16, {}, eight) == 1  # at least one
    for ignored in ("0", "", "two", "-2", "4,2"):
        assert torch_threads(0, 2, {"OMP_NUM_THREADS": ignored}, eight) == 4, ignored


@pytest.fixture
def six_cores_no_omp(monkeypatch):
    """A process that may use 6 cores, with OMP_NUM_THREADS unset."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(6)), raising=False)


def test_threads_zero_at_load(lj_model, monkeypatch, six_cores_no_omp):
    mlipdrive.load(lj_model, settings={"threads": 0})
    assert torch.get_num_threads() == 6
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    mlipdrive.load(lj_model, settings={"threads": 0})
    assert torch.get_num_threads() == 4


class NodeCommunicator:
    """An mpi4py communicator stand-in whose node holds ``size`` ranks."""

    COMM_TYPE_SHARED = 7  # the MPI module's constant, here on the stand-in

    def __init__(self, size: int):
        self.size = size
        self.freed = False

    def Split_type(self, kind):
        assert kind == self.COMM_TYPE_SHARED
        return self

    def Get_size(self):
        return self.size

    def Free(self):
        self.freed = True


def test_threads_zero_shares_cores_between_ranks_on_node(six_cores_no_omp):
    node = NodeCommunicator(3)
    _share_cores(node, NodeCommunicator)
    assert torch.get_num_threads() == 2 and node.freed


# ---------------------------------------------------------------------- dtype


@pytest.mark.parametrize("model_fixture,structure", [("lj_model", argon), ("mace_model", copper_aluminium)])
def test_dtype_float32_evaluates_in_float32(request, model_fixture, structure):
    path = request.getfixturevalue(model_fixture)
    atoms = structure(repeat=2, seed=11)
    reference = compute(mlipdrive.load(path), atoms)
    potential = mlipdrive.load(path, settings={"dtype": "float32"})
    assert potential.dtype == torch.float32
    assert potential.model.capabilities().dtype == "float32"
    assert potential.exported_dtype == "float64"
    recorder = recording(potential)
    results = compute(potential, atoms)
    (system,), options, _ = recorder.calls[-1]
    assert system.positions.dtype == torch.float32
    difference = abs(results.energy - reference.energy)
    # float32 round-off, not float64's, and within the float32 tolerance
    assert 1e-12 * abs(reference.energy) < difference < FLOAT32_ENERGY_PER_ATOM * len(atoms)


# ---------------------------------------------------------------------- TorchScript switches


def test_graph_optimize_switches_the_executor(lj_model):
    mlipdrive.load(lj_model, settings={"graph_optimize": False})
    assert torch._C._get_graph_executor_optimize() is False
    mlipdrive.load(lj_model, settings={"graph_optimize": True})
    assert torch._C._get_graph_executor_optimize() is True


def test_fusion_strategy_is_set(lj_model):
    mlipdrive.load(lj_model, settings={"fusion_strategy": "STATIC:3,DYNAMIC:4"})
    # set_fusion_strategy returns the strategy it replaces
    previous = torch.jit.set_fusion_strategy(TORCH_FUSION_DEFAULT)
    assert [tuple(item) for item in previous] == [("STATIC", 3), ("DYNAMIC", 4)]


# ---------------------------------------------------------------------- skin


def test_skin_keeps_the_pair_list_for_small_moves(lj_model):
    atoms = argon(repeat=2, seed=12)
    potential = mlipdrive.load(lj_model, settings={"skin": 1.0})
    compute(potential, atoms)
    assert potential.verlet.rebuilds == 1
    atoms.positions[0, 0] += 0.45  # less than skin / 2
    kept = compute(potential, atoms)
    assert potential.verlet.rebuilds == 1
    # the kept list still holds every pair within the cutoff
    fresh = compute(mlipdrive.load(lj_model, settings={"skin": 0.0}), atoms)
    assert abs(kept.energy - fresh.energy) <= 1e-12 * abs(fresh.energy)
    atoms.positions[0, 0] += 0.1  # 0.55 from where the list was built
    compute(potential, atoms)
    assert potential.verlet.rebuilds == 2


def test_skin_zero_rebuilds_every_call(lj_model):
    atoms = argon(repeat=2, seed=12)
    potential = mlipdrive.load(lj_model, settings={"skin": 0.0})
    for _ in range(3):
        compute(potential, atoms)
    assert potential.verlet.rebuilds == 3


# ---------------------------------------------------------------------- check_consistency


class PerAtomEnergyAlways(WrappedArgon):
    """LJ that answers with per-atom energies whatever it is asked for: a wrong
    output that metatomic's consistency checks catch (and that sums right)."""

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        asked = {"energy": ModelOutput(unit=outputs["energy"].unit, sample_kind="atom")}
        return self.lj(systems, asked, selected_atoms)


@pytest.fixture(scope="module")
def per_atom_always_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "lj-per-atom-always.pt"
    return save_argon_variant(PerAtomEnergyAlways(), path, "bad", "LJ, always per-atom energies")


def test_check_consistency_runs_metatomic_checks(per_atom_always_model):
    atoms = argon(repeat=2, seed=13)
    unchecked = mlipdrive.load(per_atom_always_model, settings={"check_consistency": False})
    assert np.isfinite(compute(unchecked, atoms).energy)
    checked = mlipdrive.load(per_atom_always_model, settings={"check_consistency": True})
    with pytest.raises(ValueError, match="invalid sample names for 'energy'"):
        compute(checked, atoms)


# ---------------------------------------------------------------------- fixed_composition


@pytest.fixture(scope="module")
def lj_two_types(tmp_path_factory):
    """The LJ model for argon and krypton (same parameters)."""
    path = tmp_path_factory.mktemp("models") / "lj-ar-kr.pt"
    export_lj(path, elements=("Ar", "Kr"))
    return path


def swapped_first_atom(numbers: np.ndarray) -> np.ndarray:
    other = numbers.copy()
    other[0] = 36 if numbers[0] == 18 else 18
    return other


def test_fixed_composition_refuses_new_types(lj_two_types):
    potential = mlipdrive.load(lj_two_types, settings={"fixed_composition": True})
    atoms = argon(repeat=2, seed=9)
    compute(potential, atoms)
    with pytest.raises(InvalidInput, match="types changed while 'fixed_composition'"):
        potential.compute(atoms.positions, swapped_first_atom(atoms.numbers), atoms.cell.array, True)
    # the same composition again: still fine
    potential.compute(atoms.positions + 0.01, atoms.numbers, atoms.cell.array, True)


def test_without_fixed_composition_types_may_change(lj_two_types):
    potential = mlipdrive.load(lj_two_types, settings={"fixed_composition": False})
    atoms = argon(repeat=2, seed=9)
    compute(potential, atoms)
    other = swapped_first_atom(atoms.numbers)
    recorder = recording(potential)
    potential.compute(atoms.positions, other, atoms.cell.array, True)
    (system,), _, _ = recorder.calls[-1]
    assert system.types.tolist() == other.tolist()


# ---------------------------------------------------------------------- atom_energy_sum


@pytest.mark.parametrize("per_atom", [False, True])
def test_atom_energy_sum_asks_for_per_atom_energies(lj_model, per_atom):
    atoms = argon(repeat=2, seed=14)
    kinds, results = {}, {}
    for setting in (False, True):
        potential = mlipdrive.load(lj_model, settings={"atom_energy_sum": setting})
        recorder = recording(potential)
        results[setting] = potential.compute(
            atoms.positions, atoms.numbers, atoms.cell.array, True, per_atom=per_atom
        )
        _, options, _ = recorder.calls[-1]
        kinds[setting] = options.outputs["energy"].sample_kind
    assert kinds == {False: "atom" if per_atom else "system", True: "atom"}
    assert abs(results[True].energy - results[False].energy) <= 1e-12 * abs(results[False].energy)
    np.testing.assert_allclose(results[True].forces, results[False].forces, rtol=0, atol=1e-12)
    if per_atom:
        np.testing.assert_array_equal(results[True].energies, results[False].energies)


# ---------------------------------------------------------------------- tf32


def test_tf32_is_a_noted_no_op_on_cpu(lj_model):
    assert mlipdrive.load(lj_model).notes == []
    potential = mlipdrive.load(lj_model, settings={"tf32": True})
    assert potential.notes == ["tf32: no effect on CPU"]
    assert not torch.backends.cuda.matmul.allow_tf32


# ---------------------------------------------------------------------- units


def test_units_are_converted(lj_model):
    metal = mlipdrive.load(lj_model)
    atomic = mlipdrive.load(lj_model, units="atomic")
    real = mlipdrive.load(lj_model, units="real")
    atoms = argon(seed=10)
    bohr, hartree, kcal = 1.8897261259048541, 0.03674932217566382, 23.06054783061903
    a = metal.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    b = atomic.compute(atoms.positions * bohr, atoms.numbers, atoms.cell.array * bohr, True)
    c = real.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert abs(b.energy - a.energy * hartree) < 1e-12 * abs(b.energy)
    np.testing.assert_allclose(b.forces, a.forces * hartree / bohr, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(b.virial, a.virial * hartree, rtol=1e-10, atol=1e-14)
    assert abs(c.energy - a.energy * kcal) < 1e-12 * abs(c.energy)
    with pytest.raises(ValueError, match="unsupported units 'lj'"):
        mlipdrive.load(lj_model, units="lj")
