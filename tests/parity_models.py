"""Exact Lennard-Jones argon models with the outputs metatomic's engines choose
between: energy variants, a per-atom energy uncertainty and non-conservative
force and stress heads. Each output is a known function of the structure, so
every engine (and metatomic's own) can be checked against ``lj/cut`` or numpy.

- ``energy``: LJ with epsilon ``LJ_EPSILON``; ``energy/strong``: LJ with
  ``STRONG * LJ_EPSILON`` (a second head: the variant is observable);
- ``energy_uncertainty`` (per atom): ``UNCERTAINTY_FACTOR * |E_i|`` with E_i the
  atom's LJ energy (about 0.045 eV in fcc argon at 5.26 Å, far above 0.1 eV once
  compressed); ``energy_uncertainty/strong`` the same for the strong head;
- ``energy_ensemble`` (per structure): ``ENSEMBLE`` times the LJ energy, four
  members (i-PI's committee);
- ``non_conservative_force`` / ``non_conservative_stress``: the analytic LJ
  forces and stress times ``force_factor`` (2 by default: a head that differs
  from -dE/dr, so the forces show which one an engine used; 1 gives exact
  forces); the ``/strong`` variants use the strong epsilon.
"""

from typing import Dict, List, Optional, Tuple

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System

from lammps_testing import WrappedArgon, save_argon_variant

LJ_SIGMA = 3.405
LJ_EPSILON = 0.0104
LJ_CUTOFF = 8.5
STRONG = 1.5
UNCERTAINTY_FACTOR = 0.5
ENSEMBLE = (0.85, 0.95, 1.05, 1.15)


class ParityArgon(WrappedArgon):
    """LJ argon with variants, uncertainty and non-conservative heads."""

    def __init__(self, force_factor: float = 2.0):
        super().__init__()
        from lj_model import LennardJones

        self.strong = LennardJones(LJ_SIGMA, STRONG * LJ_EPSILON, LJ_CUTOFF, False, False)
        self.force_factor = force_factor
        self.uncertainty_factor = UNCERTAINTY_FACTOR
        self.register_buffer("ensemble", torch.tensor(ENSEMBLE, dtype=torch.float64))

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        results: Dict[str, TensorMap] = {}
        for name, request in outputs.items():
            base = name.split("/")[0]
            strong = name.endswith("/strong")
            if base == "energy":
                results[name] = self._energy(systems, request, selected_atoms, strong)
            elif base == "energy_ensemble":
                results[name] = self._ensemble(systems, selected_atoms, strong)
            elif base == "energy_uncertainty":
                results[name] = self._uncertainty(systems, request, selected_atoms, strong)
            elif base == "non_conservative_force" or base == "non_conservative_forces":
                results[name] = self._forces(systems, selected_atoms, strong)
            elif base == "non_conservative_stress":
                results[name] = self._stress(systems, selected_atoms, strong)
        return results

    def _energy(self, systems: List[System], request: ModelOutput, selected: Optional[Labels], strong: bool):
        if strong:
            return self.strong(systems, {"energy": request}, selected)["energy"]
        return self.lj(systems, {"energy": request}, selected)["energy"]

    def _ensemble(self, systems: List[System], selected: Optional[Labels], strong: bool) -> TensorMap:
        totals = self._energy(systems, ModelOutput(sample_kind="system"), selected, strong).block()
        values = totals.values * self.ensemble.to(totals.values.dtype).reshape(1, -1)
        device = values.device
        properties = Labels(["member"], torch.arange(values.shape[1], device=device).reshape(-1, 1))
        block = TensorBlock(values, totals.samples, [], properties)
        return TensorMap(Labels(["_"], torch.tensor([[0]], device=device)), [block])

    def _uncertainty(self, systems: List[System], request: ModelOutput, selected: Optional[Labels], strong: bool):
        per_atom = self._energy(systems, ModelOutput(sample_kind="atom"), selected, strong).block()
        values = self.uncertainty_factor * per_atom.values.abs()
        samples = per_atom.samples
        if request.sample_kind == "system":
            totals = torch.zeros(len(systems), 1, dtype=values.dtype, device=values.device)
            values = totals.index_add(0, samples.column("system"), values)
            samples = Labels(["system"], torch.arange(len(systems), device=values.device).reshape(-1, 1))
        properties = Labels(["energy"], torch.tensor([[0]], device=values.device))
        block = TensorBlock(values, samples, [], properties)
        return TensorMap(Labels(["_"], torch.tensor([[0]], device=values.device)), [block])

    def _pair_terms(self, system: System, strong: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-atom forces (n, 3) and per-atom virials (n, 3, 3) of LJ, exact."""
        lj = self.strong if strong else self.lj
        neighbors = system.get_neighbor_list(lj._neighbors)
        pairs = neighbors.samples.values.to(torch.int64)
        vectors = neighbors.values.reshape(-1, 3)
        r2 = (vectors * vectors).sum(dim=1)
        inside = r2 < lj.cutoff * lj.cutoff
        safe_r2 = torch.where(inside, r2, torch.ones_like(r2))
        sr6 = (lj.sigma * lj.sigma / safe_r2) ** 3
        # (1/r) dE/dr of each pair: dE/d(vector) = coefficient * vector
        coefficient = 4.0 * lj.epsilon * (-12.0 * sr6 * sr6 + 6.0 * sr6) / safe_r2
        coefficient = torch.where(inside, coefficient, torch.zeros_like(coefficient))
        gradient = coefficient.unsqueeze(1) * vectors
        n_atoms = system.positions.shape[0]
        forces = torch.zeros(n_atoms, 3, dtype=vectors.dtype, device=vectors.device)
        # half list: each pair once; x_j - x_i = vector, so F_i += g and F_j -= g
        forces = forces.index_add(0, pairs[:, 0], gradient).index_add(0, pairs[:, 1], -gradient)
        # virial sum r (x) f: -vector (x) g per pair, half to each atom
        pair_virial = -0.5 * vectors.unsqueeze(2) * gradient.unsqueeze(1)
        virials = torch.zeros(n_atoms, 3, 3, dtype=vectors.dtype, device=vectors.device)
        virials = virials.index_add(0, pairs[:, 0], pair_virial).index_add(0, pairs[:, 1], pair_virial)
        return self.force_factor * forces, self.force_factor * virials

    def _selected(self, systems: List[System], per_atom: List[torch.Tensor], selected: Optional[Labels]):
        return self.lj._select(systems, per_atom, selected)

    def _forces(self, systems: List[System], selected: Optional[Labels], strong: bool) -> TensorMap:
        forces = [self._pair_terms(system, strong)[0] for system in systems]
        samples, values = self._selected(systems, forces, selected)
        device = values.device
        block = TensorBlock(
            values.reshape(-1, 3, 1),
            Labels(["system", "atom"], samples),
            [Labels(["xyz"], torch.arange(3, device=device).reshape(-1, 1))],
            Labels(["non_conservative_force"], torch.tensor([[0]], device=device)),
        )
        return TensorMap(Labels(["_"], torch.tensor([[0]], device=device)), [block])

    def _stress(self, systems: List[System], selected: Optional[Labels], strong: bool) -> TensorMap:
        virials = [self._pair_terms(system, strong)[1].reshape(-1, 9) for system in systems]
        samples, values = self._selected(systems, virials, selected)
        device = values.device
        totals = torch.zeros(len(systems), 9, dtype=values.dtype, device=device)
        totals = totals.index_add(0, samples[:, 0], values)
        stresses: List[torch.Tensor] = []
        for index, system in enumerate(systems):
            volume = torch.abs(torch.det(system.cell))
            # metatomic's zero cell vectors along non-periodic axes: infinite volume
            if float(volume) == 0.0:
                volume = torch.full_like(volume, float("inf"))
            stresses.append(-totals[index] / volume)
        xyz = [
            Labels([axis], torch.arange(3, device=device).reshape(-1, 1))
            for axis in ("xyz_1", "xyz_2")
        ]
        block = TensorBlock(
            torch.stack(stresses).reshape(-1, 3, 3, 1),
            Labels(["system"], torch.arange(len(systems), device=device).reshape(-1, 1)),
            xyz,
            Labels(["non_conservative_stress"], torch.tensor([[0]], device=device)),
        )
        return TensorMap(Labels(["_"], torch.tensor([[0]], device=device)), [block])


def parity_outputs(variants: bool = True, uncertainty: bool = True, heads: bool = True):
    """The capabilities' outputs of a :class:`ParityArgon` model."""
    outputs = {"energy": ModelOutput(unit="eV", sample_kind="atom", description="LJ argon")}
    suffixes = [""] + (["/strong"] if variants else [])
    for suffix in suffixes:
        if suffix:
            outputs["energy" + suffix] = ModelOutput(
                unit="eV", sample_kind="atom", description=f"LJ, epsilon x {STRONG}"
            )
        if uncertainty:
            outputs["energy_uncertainty" + suffix] = ModelOutput(
                unit="eV", sample_kind="atom", description="half the atom's |energy|"
            )
            outputs["energy_ensemble" + suffix] = ModelOutput(
                unit="eV", sample_kind="system", description="four scaled energies"
            )
        if heads:
            outputs["non_conservative_force" + suffix] = ModelOutput(
                unit="eV/Angstrom", sample_kind="atom", description="LJ forces x factor"
            )
            outputs["non_conservative_stress" + suffix] = ModelOutput(
                unit="eV/Angstrom^3", sample_kind="system", description="LJ stress x factor"
            )
    return outputs


def export_parity_argon(path, force_factor: float = 2.0, **outputs):
    """Save a :class:`ParityArgon` model; ``outputs`` as in :func:`parity_outputs`."""
    description = "LJ argon with variants, uncertainty and non-conservative heads"
    return save_argon_variant(
        ParityArgon(force_factor), path, "lj-parity", description,
        outputs=parity_outputs(**outputs),
    )


class AsymmetricArgon(WrappedArgon):
    """LJ plus ``c * x * y`` per atom: a (non-physical) energy whose virial
    ``-dE/d(strain)`` is not symmetric, so that an engine's symmetrisation shows."""

    def __init__(self, c: float = 1e-4):
        super().__init__()
        self.c = c

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        per_atom = self.lj(systems, {"energy": ModelOutput(sample_kind="atom")}, selected_atoms)
        block = per_atom["energy"].block()
        extra: List[torch.Tensor] = []
        for system in systems:
            extra.append(self.c * system.positions[:, 0] * system.positions[:, 1])
        samples, values = self.lj._select(systems, extra, selected_atoms)
        values = block.values + values.reshape(-1, 1)
        device = values.device
        if outputs["energy"].sample_kind == "system":
            totals = torch.zeros(len(systems), 1, dtype=values.dtype, device=device)
            values = totals.index_add(0, samples[:, 0], values)
            samples = torch.arange(len(systems), device=device).reshape(-1, 1)
            labels = Labels(["system"], samples)
        else:
            labels = Labels(["system", "atom"], samples)
        block = TensorBlock(values, labels, [], block.properties)
        return {"energy": TensorMap(per_atom["energy"].keys, [block])}


def export_asymmetric_argon(path):
    """Save an :class:`AsymmetricArgon` model."""
    return save_argon_variant(AsymmetricArgon(), path, "lj-asymmetric", "LJ + c x y per atom")

