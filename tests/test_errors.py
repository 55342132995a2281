"""Bad input: each a clear error that names the problem and the fix."""

import json
import zipfile

import numpy as np
import pytest

import mlipdrive
from mlipdrive.model_loading import ModelLoadError
from mlipdrive.potential import InvalidInput
from mlipdrive.testing import argon


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
