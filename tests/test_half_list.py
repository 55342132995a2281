"""The half-list rule is one rule: :func:`mlipdrive.neighbors.half_list_keep`,
generated into the LAMMPS plugin (``mlipdrive_python_rules.h``). LAMMPS's
periodic layout and the Python driver must hand a model the same half list.

The witness (``witness_model.py``) gives each pair's energy to the *first* atom
of the pair, with a term that changes sign with the pair vector: its per-atom
energies move as soon as one pair is kept in the other orientation (or a
periodic self-image with the opposite cell shift).

On 2 ranks the mixed and ghosts layouts hand each rank's model its local-ghost
pairs local atom first (both ranks count such a pair, each for its own atom),
and its local-local pairs, folded images included, by the same rule: the
witness's per-atom energies show it (``test_split_layouts_orient_pairs_local_first``).
A model must therefore not give a half-list pair's whole energy to one atom if
it is to run on several ranks: the witness does, and only its per-atom energies
are compared here.
"""

import ase.build
import numpy as np
import pytest
import torch
from lammps_reference import read_dump_box
from lammps_testing import lj_lattice_lines, read_dump, run_lmp
from witness_model import export_witness

import mlipdrive
from mlipdrive.neighbors import half_list_keep, half_list_mask

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


# ------------------------------------------- the layouts that keep ghosts

SPLIT_CUTOFF = 7.0  # Å, against a 15.8 Å box cut in two along x


def counted_pairs(pairs, shifts, owner, ids, cut_axes):
    """Which pairs (i, j, S) of the whole structure's full list give their energy
    to atom i in a layout that keeps ghosts: i's rank holds the image of j as a
    ghost (another rank's atom, or an image across a cut axis), so the pair is
    local -> ghost, always i first; otherwise both are local atoms (an image
    along a folded axis folds onto its atom with a cell shift) and the half-list
    rule decides, on System indices, which are the atom IDs' order."""
    i, j = pairs[:, 0], pairs[:, 1]
    ghost = (owner[i] != owner[j]) | (shifts[:, cut_axes] != 0).any(axis=1)
    folded = shifts.copy()
    folded[:, cut_axes] = 0
    local = half_list_keep(torch.as_tensor(ids[i]), torch.as_tensor(ids[j]),
                           *(torch.as_tensor(folded[:, k]) for k in range(3))).numpy()
    return ghost | local


@pytest.mark.parametrize("mode, cut_axes", [("auto", [0]), ("ghosts", [0, 1, 2])],
                         ids=["mixed", "ghosts"])
def test_split_layouts_orient_pairs_local_first(tmp_path, mode, cut_axes):
    """2 ranks (processors 2 1 1): each local atom's energy is the witness's pairs
    it is first atom of, as counted_pairs says; flipping every pair (the witness
    that gives pairs to their second atom) would change them."""
    from vesin import NeighborList

    from lammps_testing import write_data

    atoms = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat(3)
    atoms.positions += np.random.default_rng(3).normal(scale=0.3, size=atoms.positions.shape)
    atoms.wrap()
    cell, positions = atoms.cell.array, atoms.positions
    # read_data hands each rank its atoms in file order: local order = ID order
    write_data(tmp_path / "atoms.data", cell, positions, np.ones(len(atoms), int), {1: 39.95})
    model = export_witness(tmp_path / "witness.pt", SPLIT_CUTOFF)
    script = "\n".join([
        "units metal", "atom_modify sort 0 0.0", "boundary p p p", "processors 2 1 1",
        "read_data atoms.data", f"pair_style mlipdrive {model} mode {mode} verify on",
        "pair_coeff * * Ar", "compute pe all pe/atom",
        "dump atoms all custom 1 atoms.dump id proc c_pe",
        "dump_modify atoms format float %.17g sort id", "run 0",
    ]) + "\n"
    run_lmp(tmp_path, script, ranks=2)
    dump = read_dump(tmp_path / "atoms.dump")
    pairs, shifts, vectors = NeighborList(cutoff=SPLIT_CUTOFF, full_list=True).compute(
        points=positions, box=cell, periodic=True, quantities="PSD")
    owner, ids = dump["proc"].astype(int), np.arange(1, len(atoms) + 1)
    assert set(owner) == {0, 1}
    envelope = (1.0 - (vectors**2).sum(axis=1) / SPLIT_CUTOFF**2) ** 2
    pair_energy = envelope * (1.0 + vectors @ np.array([1.0, 2.0, 3.0]) / SPLIT_CUTOFF)
    counted = counted_pairs(pairs, shifts, owner, ids, cut_axes)
    expected = np.bincount(pairs[counted, 0], pair_energy[counted], minlength=len(atoms))
    scale = np.abs(expected).max()
    assert np.abs(dump["c_pe"] - expected).max() <= 1e-10 * scale
    # the witness sees the orientation: the other atom of each local-local pair
    flipped = np.bincount(pairs[~counted, 0], pair_energy[~counted], minlength=len(atoms))
    assert np.abs(flipped - expected).max() > 1e-3 * scale
