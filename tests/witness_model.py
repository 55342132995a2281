"""A model that sees which pairs it is given, and in which orientation.

Each pair of its (strict, half) neighbour list gives its energy to its first
atom (or, ``to_second``, its second), weighted by ``(1 + w . r / cutoff)`` with
``w = (1, 2, 3)`` and a smooth envelope that is *not* zero beyond the cutoff: a
pair missing, a pair beyond the cutoff, or a pair kept in the other orientation
all change its per-atom energies. Not a physical model.
"""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)


class PairsToOneAtom(torch.nn.Module):
    """Per-atom energies: each pair of the half list goes to its first atom (or,
    ``to_second``, its second), weighted by (1 + direction . r / cutoff)."""

    def __init__(self, cutoff: float, to_second: bool):
        super().__init__()
        self.to_second = to_second
        self.cutoff = cutoff
        self._neighbors = NeighborListOptions(cutoff=cutoff, full_list=False, strict=True)

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


def export_witness(path, cutoff: float, to_second: bool = False):
    """The witness for argon (type 18) with this cutoff (Å), float64, as a file."""
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[18],
        interaction_range=cutoff,
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype="float64",
    )
    metadata = ModelMetadata(name="pairs-to-one-atom", description="half-list witness")
    AtomisticModel(PairsToOneAtom(cutoff, to_second).eval(), metadata, capabilities).save(str(path))
    return path
