"""A second Lennard-Jones model, written the way most exported models are:
a *strict half* neighbour list (``NeighborListOptions(cutoff, full_list=False,
strict=True)``), the energy a sum over the pairs, ``selected_atoms`` honoured by
counting each pair's energy half for each selected atom.

It shares no code with ``lj_model.py`` (the suite's oracle): it exists to show
that the engines do not depend on how a model declares its list (issue 20).

    python models/lj/strict_half_lj.py OUTPUT.pt [--cutoff 8.5] [--dtype float32]
"""

import argparse
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


class StrictHalfLJ(torch.nn.Module):
    """E = sum over pairs r < rc of 4 eps ((s/r)^12 - (s/r)^6) - e(rc)."""

    def __init__(self, sigma: float, epsilon: float, cutoff: float):
        super().__init__()
        self.sigma = sigma
        self.epsilon = epsilon
        sr6 = (sigma / cutoff) ** 6
        self.shift = 4.0 * epsilon * (sr6 * sr6 - sr6)
        self.request = NeighborListOptions(cutoff=cutoff, full_list=False, strict=True)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.request]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        if "energy" not in outputs:
            return {}
        per_atom = outputs["energy"].sample_kind == "atom"
        values: List[torch.Tensor] = []
        samples: List[torch.Tensor] = []
        for index, system in enumerate(systems):
            weight = self._weights(system, index, selected_atoms)
            atom_energy = self._atom_energy(system) * weight
            if per_atom:
                atoms = torch.nonzero(weight > 0).reshape(-1)
                values.append(atom_energy[atoms])
                samples.append(torch.stack([torch.full_like(atoms, index), atoms], dim=1))
            else:
                values.append(atom_energy.sum().reshape(1))
                samples.append(torch.tensor([[index]], device=weight.device))
        names = ["system", "atom"] if per_atom else ["system"]
        device = systems[0].positions.device
        block = TensorBlock(
            values=torch.cat(values).reshape(-1, 1),
            samples=Labels(names, torch.cat(samples).to(torch.int32)),
            components=[],
            properties=Labels(["energy"], torch.tensor([[0]], device=device)),
        )
        return {"energy": TensorMap(Labels(["_"], torch.tensor([[0]], device=device)), [block])}

    def _weights(self, system: System, index: int, selected_atoms: Optional[Labels]) -> torch.Tensor:
        """1 for the atoms whose energy counts, 0 for the others."""
        n_atoms = system.positions.shape[0]
        weight = torch.ones(n_atoms, dtype=system.positions.dtype, device=system.positions.device)
        if selected_atoms is not None:
            chosen = selected_atoms.values
            atoms = chosen[chosen[:, 0] == index][:, 1].to(torch.int64)
            weight = torch.zeros_like(weight).index_fill(0, atoms, 1.0)
        return weight

    def _atom_energy(self, system: System) -> torch.Tensor:
        """Each pair's energy, half to each of its atoms (strict: every pair is inside)."""
        pairs = system.get_neighbor_list(self.request)
        r2 = pairs.values.reshape(-1, 3).pow(2).sum(dim=1)
        sr6 = (self.sigma**2 / r2) ** 3
        half = 2.0 * self.epsilon * (sr6 * sr6 - sr6) - 0.5 * self.shift
        first = pairs.samples.column("first_atom").to(torch.int64)
        second = pairs.samples.column("second_atom").to(torch.int64)
        energy = torch.zeros(system.positions.shape[0], dtype=r2.dtype, device=r2.device)
        return energy.index_add(0, first, half).index_add(0, second, half)


def export(path: str, cutoff: float = 8.5, dtype: str = "float64", sigma: float = 3.405,
           epsilon: float = 0.0104, element: int = 18):
    """Write the model (argon by default, shifted at `cutoff`, Å and eV) to `path`."""
    model = StrictHalfLJ(sigma, epsilon, cutoff).eval()
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[element],
        interaction_range=cutoff,
        length_unit="Angstrom",
        supported_devices=["cpu", "cuda"],
        dtype=dtype,
    )
    metadata = ModelMetadata(name="strict-half-lj", description="LJ on a strict half list (issue 20)")
    AtomisticModel(model, metadata, capabilities).save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="path of the .pt file to write")
    parser.add_argument("--cutoff", type=float, default=8.5, help="Å")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    args = parser.parse_args()
    export(args.output, cutoff=args.cutoff, dtype=args.dtype)


if __name__ == "__main__":
    main()
