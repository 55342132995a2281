"""Inference settings: presets, each field on its own, and what they change."""

import dataclasses

import numpy as np
import pytest
import torch

import mlipdrive
from mlipdrive.potential import InvalidInput
from mlipdrive.settings import SETTINGS, InferenceSettings, cpp_header, resolve
from mlipdrive.testing import FLOAT32_ENERGY_PER_ATOM, FLOAT32_FORCES, argon, copper_aluminium


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
    assert InferenceSettings.from_strings(freeze="on", threads="2").threads == 2
    with pytest.raises(ValueError, match="unknown settings preset"):
        InferenceSettings.preset("fast")
    with pytest.raises(ValueError, match="unknown setting"):
        resolve({"float": 32})
    with pytest.raises(ValueError, match="expected on/off"):
        InferenceSettings.from_strings(freeze="maybe")
    with pytest.raises(ValueError, match="fusion_strategy must look like"):
        InferenceSettings(fusion_strategy="FAST")


# every field on its own, with a value other than its default
SINGLE_FIELDS = [
    {"dtype": "float32"},
    {"dtype": "float64"},
    {"threads": 1},
    {"graph_optimize": False},
    {"fusion_strategy": "STATIC:2,DYNAMIC:4"},
    {"freeze": True},
    {"skin": 0.0},
    {"check_consistency": True},
    {"fixed_composition": True},
    {"atom_energy_sum": True},
    {"tf32": True},
]


@pytest.mark.parametrize("overrides", SINGLE_FIELDS, ids=lambda o: next(iter(o)))
@pytest.mark.parametrize("model_fixture,structure", [("lj_model", argon), ("mace_model", copper_aluminium)])
def test_each_setting_alone(request, model_fixture, structure, overrides):
    path = request.getfixturevalue(model_fixture)
    atoms = structure(repeat=2, seed=7)
    reference = mlipdrive.load(path).compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    try:
        potential = mlipdrive.load(path, settings=overrides)
        assert potential.settings == InferenceSettings.preset("default", **overrides)
        results = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    finally:
        # the graph-executor and fusion switches are process-wide: restore torch's
        mlipdrive.load(path)
        torch.jit.set_fusion_strategy([("STATIC", 2), ("DYNAMIC", 10)])
    float32 = overrides.get("dtype") == "float32"
    energy_tolerance = FLOAT32_ENERGY_PER_ATOM * len(atoms) if float32 else 1e-10 * abs(reference.energy)
    forces_tolerance = FLOAT32_FORCES if float32 else 1e-10
    assert abs(results.energy - reference.energy) < energy_tolerance
    np.testing.assert_allclose(results.forces, reference.forces, rtol=0, atol=forces_tolerance)
    if float32:
        assert potential.dtype == torch.float32


@pytest.mark.parametrize("model_fixture,structure", [("lj_model", argon), ("mace_model", copper_aluminium)])
def test_turbo_close_to_default(request, model_fixture, structure):
    path = request.getfixturevalue(model_fixture)
    atoms = structure(repeat=2, seed=8)
    default = mlipdrive.load(path).compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    try:
        turbo = mlipdrive.load(path, settings="turbo")
        results = turbo.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    finally:
        mlipdrive.load(path)
    assert abs(results.energy - default.energy) / len(atoms) < FLOAT32_ENERGY_PER_ATOM
    np.testing.assert_allclose(results.forces, default.forces, rtol=0, atol=FLOAT32_FORCES)
    np.testing.assert_allclose(results.virial, default.virial, rtol=0, atol=FLOAT32_FORCES * 10)


def test_fixed_composition_refuses_new_types(mace_model):
    potential = mlipdrive.load(mace_model, settings={"fixed_composition": True})
    atoms = copper_aluminium(repeat=2, seed=9)
    potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    swapped = atoms.numbers.copy()
    swapped[[0, 1]] = [29, 13] if swapped[0] == 13 else [13, 29]
    if np.array_equal(swapped, atoms.numbers):
        swapped[0] = 42 - swapped[0]
    with pytest.raises(InvalidInput, match="types changed while 'fixed_composition'"):
        potential.compute(atoms.positions, swapped, atoms.cell.array, True)
    # same composition again: still fine
    potential.compute(atoms.positions + 0.01, atoms.numbers, atoms.cell.array, True)


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
