"""Bad input: each a clear error that names the problem and the fix."""

import json
import zipfile

import numpy as np
import pytest

import mlipdrive
from mlipdrive.loading import ModelLoadError
from mlipdrive.potential import InvalidInput
from structures import argon


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist; give the path"):
        mlipdrive.load(tmp_path / "nope.pt")


def test_corrupt_model_file(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match="not a loadable metatomic model.*export it again"):
        mlipdrive.load(path)


def test_truncated_model_file(tmp_path, lj_model):
    path = tmp_path / "truncated.pt"
    path.write_bytes(lj_model.read_bytes()[:2000])
    with pytest.raises(ModelLoadError, match="not a loadable metatomic model"):
        mlipdrive.load(path)


def needs_extension(source, target):
    """A copy of ``source`` that calls an op from a TorchScript extension not loaded.

    Both what metatomic records at export (the 'extensions' metadata) and what
    TorchScript needs at load (an unknown ``ops.<library>.<op>`` call) are patched in.
    """
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("/extra/extensions"):
                data = json.dumps(
                    [{"name": "mlipdrive_missing_ext", "path": "mlipdrive_missing_ext/libext.so"}]
                ).encode()
            if item.filename.endswith("code/__torch__/lj_model.py"):
                text = data.decode()
                anchor = "    _0 = torch.__contains__(outputs, \"energy\")\n"
                assert anchor in text
                text = text.replace(
                    anchor, anchor + "    _unused = ops.mlipdrive_missing_ext.double(1.0)\n"
                )
                data = text.encode()
            zout.writestr(item, data)


def test_model_needing_extension(tmp_path, lj_model):
    path = tmp_path / "with-extension.pt"
    needs_extension(lj_model, path)
    with pytest.raises(ModelLoadError, match="needs TorchScript extensions.*extensions"):
        mlipdrive.load(path)
    with pytest.raises(ModelLoadError, match="extensions directory .* does not exist"):
        mlipdrive.load(path, extensions=tmp_path / "no-such-dir")


def test_unsupported_atom_types(lj_model):
    potential = mlipdrive.load(lj_model)
    atoms = argon(seed=0)
    numbers = atoms.numbers.copy()
    numbers[3] = 29
    with pytest.raises(InvalidInput, match=r"atomic types \[29\] are not supported.*knows \[18\]"):
        potential.compute(atoms.positions, numbers, atoms.cell.array, True)


@pytest.mark.parametrize(
    "positions_shape,types_shape,cell_shape,match",
    [
        ((32, 2), (32,), (3, 3), r"positions must have shape \(n_atoms, 3\)"),
        ((32, 3), (31,), (3, 3), r"types must have shape \(32,\)"),
        ((32, 3), (32,), (3,), r"cell must have shape \(3, 3\)"),
    ],
)
def test_wrong_shapes(lj_model, positions_shape, types_shape, cell_shape, match):
    potential = mlipdrive.load(lj_model)
    with pytest.raises(InvalidInput, match=match):
        potential.compute(
            np.zeros(positions_shape), np.full(types_shape, 18), np.ones(cell_shape), True
        )


def test_nan_positions(lj_model):
    potential = mlipdrive.load(lj_model)
    atoms = argon(seed=0)
    positions = atoms.positions.copy()
    positions[5, 1] = np.nan
    with pytest.raises(InvalidInput, match=r"positions of atoms \[5\] are not finite"):
        potential.compute(positions, atoms.numbers, atoms.cell.array, True)


def test_overlapping_atoms_give_non_finite_error(lj_model):
    potential = mlipdrive.load(lj_model)
    atoms = argon(seed=0)
    positions = atoms.positions.copy()
    positions[1] = positions[0]
    with pytest.raises(FloatingPointError, match="non-finite energy"):
        potential.compute(positions, atoms.numbers, atoms.cell.array, True)


def test_periodic_without_cell(lj_model):
    potential = mlipdrive.load(lj_model)
    with pytest.raises(InvalidInput, match="periodic along cell vector 0 but that vector is zero"):
        potential.compute(np.zeros((1, 3)), [18], np.zeros((3, 3)), True)


def test_unknown_preset(lj_model):
    with pytest.raises(ValueError, match="unknown settings preset 'fast'"):
        mlipdrive.load(lj_model, settings="fast")


# ------------------------------------------------------------------ empty systems


@pytest.mark.parametrize("model", ["lj_model", "mace_model"])
def test_empty_system_has_zero_energy(model, request):
    potential = mlipdrive.load(request.getfixturevalue(model))
    results = potential.compute(
        np.zeros((0, 3)), [], 10.0 * np.eye(3), True, per_atom=True
    )
    assert results.energy == 0.0
    assert results.forces.shape == (0, 3)
    assert results.energies.shape == (0,)
    np.testing.assert_array_equal(results.virial, np.zeros((3, 3)))
    np.testing.assert_array_equal(results.stress, np.zeros((3, 3)))


def test_empty_system_through_ase(mace_model):
    import ase

    from mlipdrive.ase import MLIPCalculator

    atoms = ase.Atoms(cell=10.0 * np.eye(3), pbc=True)
    atoms.calc = MLIPCalculator(mace_model)
    assert atoms.get_potential_energy() == 0.0
    assert atoms.get_forces().shape == (0, 3)
    np.testing.assert_array_equal(atoms.get_stress(), np.zeros(6))


# ------------------------------------------------------------------ degenerate cells


def _degenerate_cells():
    """(cell, match) pairs that no periodic evaluation should accept."""
    base = argon(seed=0).cell.array
    thin = base.copy()
    thin[2] = [0.0, 0.0, 1e-9]  # a periodic vector far shorter than the others
    flat = base.copy()
    flat[2] = base[0] + base[1] + [0.0, 0.0, 1e-9]  # in the plane of the first two
    collinear = base.copy()
    collinear[1] = 2.0 * base[0] + 1e-12
    return [
        (thin, r"periodic along cell vector 2 but that vector is only 1e-09 angstrom"),
        (flat, r"periodic cell vectors .* are nearly linearly dependent"),
        (collinear, r"periodic cell vectors .* are nearly linearly dependent"),
    ]


@pytest.mark.parametrize("cell,match", _degenerate_cells(), ids=["thin", "flat", "collinear"])
def test_degenerate_periodic_cell(lj_model, cell, match):
    potential = mlipdrive.load(lj_model)
    atoms = argon(seed=0)
    with pytest.raises(InvalidInput, match=match) as error:
        potential.compute(atoms.positions, atoms.numbers, cell, True)
    assert "set pbc False along that axis" in str(error.value)


def test_degenerate_cell_through_ase(mace_model):
    from mlipdrive.ase import MLIPCalculator
    from structures import copper_aluminium

    atoms = copper_aluminium()
    cell = atoms.cell.array.copy()
    cell[2] = [0.0, 0.0, 1e-9]
    atoms.set_cell(cell, scale_atoms=False)
    atoms.calc = MLIPCalculator(mace_model)
    with pytest.raises(InvalidInput, match="periodic along cell vector 2"):
        atoms.get_potential_energy()


def test_zero_vectors_along_non_periodic_axes(lj_model):
    potential = mlipdrive.load(lj_model)
    atoms = argon(seed=0)
    slab = atoms.cell.array.copy()
    slab[2] = 0.0
    periodic = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array,
                                 [True, True, False])
    as_slab = potential.compute(atoms.positions, atoms.numbers, slab, [True, True, False])
    assert as_slab.energy == pytest.approx(periodic.energy, rel=1e-12)
    cluster = potential.compute(atoms.positions, atoms.numbers, np.zeros((3, 3)), False)
    assert np.isfinite(cluster.energy)


@pytest.mark.parametrize("skin", [-1.0, float("nan"), float("inf")])
def test_skin_must_be_finite_and_non_negative(skin):
    with pytest.raises(ValueError, match="'skin' must be a finite number >= 0 angstrom"):
        mlipdrive.InferenceSettings(skin=skin)


def test_operator_without_autograd_is_an_error(tmp_path):
    """An operator with no autograd kernel would silently drop its part of the
    forces: the backward pass refuses it, naming the operator."""
    from lammps_testing import export_lj_through_op

    path = export_lj_through_op(tmp_path / "through-op.pt", "python")
    potential = mlipdrive.load(path)
    atoms = argon()
    energy_only = potential.compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True, forces=False, stress=False
    )
    assert np.isfinite(energy_only.energy)
    with pytest.raises(RuntimeError, match="mlipdrive_test::no_autograd.*silently wrong"):
        potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
