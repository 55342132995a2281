"""The half-list rule is one rule: :func:`mlipdrive.neighbors.half_list_keep`,
generated into the LAMMPS plugin (``mlipdrive_python_rules.h``). LAMMPS's
periodic layout and the Python driver must hand a model the same half list.

The witness (``witness_model.py``) gives each pair's energy to the *first* atom
of the pair, with a term that changes sign with the pair vector: its per-atom
energies move as soon as one pair is kept in the other orientation (or a
periodic self-image with the opposite cell shift).
"""

import numpy as np
import pytest
import torch
from lammps_reference import read_dump_box
from lammps_testing import lj_lattice_lines, read_dump, run_lmp
from witness_model import export_witness

import mlipdrive
from mlipdrive.neighbors import half_list_mask

CUTOFF = 11.0  # Å: longer than the 2x2x2 fcc box (10.52 Å), so atoms pair with their own images


def lammps_script(model, structure):
    # no spatial sort: LAMMPS's local order (the System's atom order) stays the
    # atom-ID order that the Python side gets, so that "i < j" means the same pair
    return "\n".join([
        "units metal",
        "atom_modify sort 0 0.0",
        "boundary p p p",
        lj_lattice_lines(structure, repeat=2),
        "displace_atoms all random 0.4 0.4 0.4 4242 units box",
        f"pair_style mlipdrive {model} mode periodic",
        "pair_coeff * * Ar",
        "compute pe all pe/atom",
        "dump atoms all custom 1 atoms.dump id x y z c_pe",
        "dump_modify atoms format float %.17g sort id",
        "run 0",
    ]) + "\n"


@pytest.mark.parametrize("structure", ["orthogonal", "triclinic"])
def test_lammps_periodic_layout_keeps_the_python_half_list(tmp_path, structure):
    model = export_witness(tmp_path / "witness.pt", CUTOFF)
    run_lmp(tmp_path / "lammps", lammps_script(model, structure))
    dump = tmp_path / "lammps" / "atoms.dump"
    atoms = read_dump(dump)
    cell, pbc = read_dump_box(dump)
    positions = np.stack([atoms["x"], atoms["y"], atoms["z"]], axis=1)
    numbers = np.full(len(positions), 18)

    # the structure has self-image pairs, whose orientation only the shift decides
    from vesin import NeighborList

    pairs, shifts = NeighborList(cutoff=CUTOFF, full_list=True).compute(
        points=positions, box=cell, periodic=pbc, quantities="PS"
    )
    self_images = pairs[:, 0] == pairs[:, 1]
    assert self_images.any()
    kept = half_list_mask(torch.as_tensor(pairs.astype(np.int64)), torch.as_tensor(shifts)).numpy()
    assert kept.sum() * 2 == len(pairs)

    python = mlipdrive.load(model).compute(positions, numbers, cell, pbc, per_atom=True)
    scale = np.abs(python.energies).max()
    assert np.abs(atoms["c_pe"] - python.energies).max() <= 1e-10 * scale

    # the witness sees orientation: the same pairs given to their other atom
    # (every pair flipped) move the per-atom energies by far more than the tolerance
    flipped = export_witness(tmp_path / "flipped.pt", CUTOFF, to_second=True)
    other = mlipdrive.load(flipped).compute(positions, numbers, cell, pbc, per_atom=True)
    assert np.abs(other.energies - python.energies).max() > 1e-3 * scale
    assert other.energy == pytest.approx(python.energy, rel=1e-12)
