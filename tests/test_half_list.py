"""The half-list rule is one rule: :func:`mlipdrive.neighbors.half_list_keep`,
generated into the LAMMPS plugin (``mlipdrive_python_rules.h``). LAMMPS's
periodic layout and the Python driver must hand a model the same half list.

The witness is a model that gives each pair's energy to the *first* atom of the
pair, with a term that changes sign with the pair vector: its per-atom energies
move as soon as one pair is kept in the other orientation (or a periodic
self-image with the opposite cell shift), while its total does not.
"""

from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from lammps_reference import read_dump_box
from lammps_testing import lj_lattice_lines, read_dump, run_lmp
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)

import mlipdrive
from mlipdrive.neighbors import half_list_mask

CUTOFF = 11.0  # Å: longer than the 2x2x2 fcc box (10.52 Å), so atoms pair with their own images


class PairsToOneAtom(torch.nn.Module):
    """Per-atom energies: each pair of the half list goes to its first atom (or,
    ``to_second``, its second), weighted by (1 + direction . r / cutoff)."""

    def __init__(self, to_second: bool):
        super().__init__()
        self.to_second = to_second
        self.cutoff = CUTOFF
        self._neighbors = NeighborListOptions(cutoff=CUTOFF, full_list=False, strict=True)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self._neighbors]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        system = systems[0]
        neighbors = system.get_neighbor_list(self._neighbors)
        vectors = neighbors.values.reshape(-1, 3)
        r2 = (vectors * vectors).sum(dim=1)
        envelope = (1.0 - r2 / (self.cutoff * self.cutoff)) ** 2
        direction = torch.tensor([1.0, 2.0, 3.0], dtype=vectors.dtype, device=vectors.device)
        pair_energy = envelope * (1.0 + (vectors @ direction) / self.cutoff)
        column = "second_atom" if self.to_second else "first_atom"
        owner = neighbors.samples.column(column).to(torch.int64)
        n_atoms = system.positions.shape[0]
        energies = torch.zeros(n_atoms, dtype=vectors.dtype, device=vectors.device)
        energies = energies.index_add(0, owner, pair_energy)
        device = energies.device
        if outputs["energy"].sample_kind == "atom":
            atoms = torch.arange(n_atoms, device=device)
            samples = Labels(["system", "atom"], torch.stack([torch.zeros_like(atoms), atoms], 1))
            values = energies.reshape(-1, 1)
        else:
            samples = Labels(["system"], torch.zeros((1, 1), dtype=torch.int32, device=device))
            values = energies.sum().reshape(1, 1)
        properties = Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32, device=device))
        block = TensorBlock(values, samples, [], properties)
        keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=device))
        return {"energy": TensorMap(keys, [block])}


def export_witness(path, to_second=False):
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[18],
        interaction_range=CUTOFF,
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype="float64",
    )
    metadata = ModelMetadata(name="pairs-to-one-atom", description="half-list witness")
    AtomisticModel(PairsToOneAtom(to_second).eval(), metadata, capabilities).save(str(path))
    return path


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
    model = export_witness(tmp_path / "witness.pt")
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
    flipped = export_witness(tmp_path / "flipped.pt", to_second=True)
    other = mlipdrive.load(flipped).compute(positions, numbers, cell, pbc, per_atom=True)
    assert np.abs(other.energies - python.energies).max() > 1e-3 * scale
    assert other.energy == pytest.approx(python.energy, rel=1e-12)
