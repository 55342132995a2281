"""Reference: LAMMPS's own ``pair_style lj/cut`` with the parameters of our exact
LJ model (shifted at the cutoff: ``pair_modify shift yes``), the same atoms and
integrator as the plugin's row. The difference is the cost of going through
torch and the model."""

import pathlib

from ..matrix import Row
from . import _lammps


def pair_lines(row: Row) -> list:
    if row.lj is None:
        raise ValueError("lj/cut runs only for our exact LJ model (--models lj)")
    lj = row.lj
    lines = [
        f"pair_style lj/cut {lj['cutoff']}",
        f"pair_coeff * * {lj['epsilon']} {lj['sigma']}",
    ]
    if lj.get("shifted", True):
        lines.append("pair_modify shift yes")
    return lines


def run(row: Row, workdir: pathlib.Path) -> dict:
    # without the plugin: the memory of a LAMMPS that never loaded torch
    return _lammps.run(row, workdir, pair_lines(row), plugin=False)
