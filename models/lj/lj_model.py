"""An exact Lennard-Jones pair potential written as a metatomic model.

It is the oracle of the test suite: ASE's ``LennardJones`` and LAMMPS's
``pair_style lj/cut`` compute the same function, so every engine that runs this
model can be checked against an independent implementation to round-off.

    E = sum_{pairs r_ij < rc} 4 eps [(sigma/r)^12 - (sigma/r)^6] - shift

``shift`` is the pair energy at ``rc`` when ``shifted`` (ASE's default, LAMMPS's
``pair_modify shift yes``) and zero otherwise. Each pair energy is split half
and half between its two atoms, which gives the per-atom energies.
"""

from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, NeighborListOptions, System


class LennardJones(torch.nn.Module):
    """Lennard-Jones energy for one or more atomic types sharing one parameter set."""

    def __init__(
        self,
        sigma: float,
        epsilon: float,
        cutoff: float,
        shifted: bool,
        full_list: bool,
    ):
        super().__init__()
        self.sigma = sigma
        self.epsilon = epsilon
        self.cutoff = cutoff
        self.full_list = full_list
        sr6 = (sigma / cutoff) ** 6
        self.shift = 4.0 * epsilon * (sr6 * sr6 - sr6) if shifted else 0.0
        # strict=False: the engine may hand over pairs beyond the cutoff (e.g. a
        # Verlet list with its skin); they are masked out below.
        self._neighbors = NeighborListOptions(
            cutoff=cutoff, full_list=full_list, strict=False
        )

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self._neighbors]

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        if "energy" not in outputs:
            return {}

        per_atom_energies: List[torch.Tensor] = []
        for system in systems:
            per_atom_energies.append(self._per_atom_energy(system))

        samples, values = self._select(systems, per_atom_energies, selected_atoms)
        device = values.device
        if outputs["energy"].sample_kind == "atom":
            block = TensorBlock(
                values=values.reshape(-1, 1),
                samples=Labels(["system", "atom"], samples),
                components=[],
                properties=Labels(["energy"], torch.tensor([[0]], device=device)),
            )
        else:
            totals = torch.zeros(len(systems), dtype=values.dtype, device=device)
            totals = totals.index_add(0, samples[:, 0], values)
            block = TensorBlock(
                values=totals.reshape(-1, 1),
                samples=Labels(
                    ["system"],
                    torch.arange(len(systems), device=device).reshape(-1, 1),
                ),
                components=[],
                properties=Labels(["energy"], torch.tensor([[0]], device=device)),
            )
        keys = Labels(["_"], torch.tensor([[0]], device=device))
        return {"energy": TensorMap(keys, [block])}

    def _per_atom_energy(self, system: System) -> torch.Tensor:
        neighbors = system.get_neighbor_list(self._neighbors)
        pairs = neighbors.samples.values
        vectors = neighbors.values.reshape(-1, 3)
        r2 = (vectors * vectors).sum(dim=1)
        inside = r2 < self.cutoff * self.cutoff
        # masked pairs get r2 = 1 so that no inf/nan reaches the backward pass
        safe_r2 = torch.where(inside, r2, torch.ones_like(r2))
        sr6 = (self.sigma * self.sigma / safe_r2) ** 3
        pair_energy = 4.0 * self.epsilon * (sr6 * sr6 - sr6) - self.shift
        pair_energy = torch.where(inside, pair_energy, torch.zeros_like(pair_energy))

        n_atoms = system.positions.shape[0]
        energy = torch.zeros(
            n_atoms, dtype=system.positions.dtype, device=system.positions.device
        )
        half = 0.5 * pair_energy
        energy = energy.index_add(0, pairs[:, 0], half)
        if not self.full_list:
            # a half list holds each pair once: give the other half to the second atom
            energy = energy.index_add(0, pairs[:, 1], half)
        return energy

    def _select(
        self,
        systems: List[System],
        per_atom_energies: List[torch.Tensor],
        selected_atoms: Optional[Labels],
    ):
        """(system, atom) sample pairs and their energies, restricted to selected atoms."""
        samples: List[torch.Tensor] = []
        values: List[torch.Tensor] = []
        for index, energy in enumerate(per_atom_energies):
            device = energy.device
            if selected_atoms is None:
                atoms = torch.arange(energy.shape[0], device=device)
            else:
                selection = selected_atoms.values
                atoms = selection[selection[:, 0] == index][:, 1]
            system_column = torch.full_like(atoms, index)
            samples.append(torch.stack([system_column, atoms], dim=1))
            values.append(energy[atoms])
        return torch.cat(samples), torch.cat(values)
