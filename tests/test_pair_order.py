"""Every reference model depends on the order of its pairs, and of its atoms, only
through rounding.

Engines hand a model its pairs in their own order (vesin's in Python, LAMMPS's
list on every rank, the MPI halo's), so a model whose results depend on that
order beyond the rounding of its dtype would give each engine a different answer.
Each family is evaluated on the 108-atom CuAl frame with its pairs in vesin's
order, then in a few random orders and with its atoms shuffled
(``tests/ordered_pairs.py``), in its exported dtype, and every change must stay
within a few roundings of the values (:func:`rounding_limits`). A model that picks
pairs by their position in the list (a neighbour cap) changes by far more:
:func:`test_a_model_that_keeps_the_first_pairs_is_caught` shows that the check
sees one. ``tools/parity/pair_order.py`` prints the same
spreads for more orders and in float32.
"""

from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
    load_atomistic_model,
)
from ordered_pairs import LJ_CUAL, OrderedEvaluation, export_cual_lj, spread

from structures import copper_aluminium

# random orders of the pairs, and of the atoms, per family: ~20 ms each
ORDERS = 4


def rounding_limits(eps: float, largest_energy: float, largest_force: float) -> Dict[str, float]:
    """How far a reordering may move the results: a few roundings of the values.

    A sum taken in another order changes by about eps times the sum of the
    magnitudes of its terms. The total energy per atom: 8 eps of the largest
    per-atom energy (``ModelFamily.energies_limit``'s rule); a per-atom energy, a
    sum over that atom's pairs and features: 32 eps of it (the rule of
    ``lammps_reference.energy_limits``); a force, a sum over pairs of terms larger
    than the force itself: 64 eps of the largest force. Measured on the 108-atom
    frame (``tools/parity/pair_order.py --orders 100``, every model of
    ``models/`` in its dtype and in float32): at most 21 eps of the largest force
    (SOAP-BPNN, float64 and float32 alike) and 11 eps of the largest per-atom
    energy. metatrain's PET run in float64 exceeds it (125-325 eps of the
    largest force): its padded neighbour slots copy the first pair and get an
    attention weight of 1e-15, not 0 (models/pet/MODEL_CARD.md), a dependence
    on which pair comes first that float32 hides.
    """
    return {
        "energy/atom": 8 * eps * largest_energy,
        "energies": 32 * eps * largest_energy,
        "forces": 64 * eps * largest_force,
    }


def assert_rounding_only(evaluation: OrderedEvaluation, eps: float, name: str):
    for kind in ("random", "atoms"):
        # without TorchScript's profiling executor: its first two calls of each
        # model cost ~1-2 s (profiling, fusion), the whole check ~0.2 s without;
        # the 'turbo' preset runs models this way too
        with torch.jit.optimized_execution(False):
            changes = spread(evaluation, ORDERS, seed=0, kind=kind)
        limits = rounding_limits(eps, changes["max |E_i|"], changes["max |F|"])
        over = {key: (changes[key], limit) for key, limit in limits.items() if not changes[key] <= limit}
        assert not over, (
            f"{name}: the results depend on the order of the {'pairs' if kind == 'random' else 'atoms'} "
            f"beyond rounding: (change, limit) {over}"
        )


@pytest.fixture(scope="module")
def frame():
    return copper_aluminium(repeat=3, rattle=0.1, strain=0.03)


def test_pair_and_atom_order_change_only_rounding(model_family, frame):
    extensions = None if model_family.extensions is None else str(model_family.extensions)
    model = load_atomistic_model(str(model_family.path), extensions_directory=extensions)
    assert model.capabilities().dtype == model_family.dtype
    assert_rounding_only(OrderedEvaluation(model, frame), model_family.eps, model_family.name)


def test_lennard_jones_half_list_changes_only_rounding(tmp_path, frame):
    """models/lj's exact LJ (a half list, index_add over pairs), for Al and Cu."""
    model = export_cual_lj(tmp_path / "lj-cual.pt")
    model = load_atomistic_model(str(model))
    assert not model.requested_neighbor_lists()[0].full_list
    assert model.requested_neighbor_lists()[0].cutoff == LJ_CUAL["cutoff"]
    assert_rounding_only(OrderedEvaluation(model, frame), float(np.finfo(np.float64).eps), "lj")


# ------------------------------------------------ the check sees an order dependence


class FirstPairs(torch.nn.Module):
    """Per-atom energy from the first ``keep`` pairs of each atom in the list's
    order (a neighbour cap, as fixed-size neighbour buffers impose): a smooth
    pair energy, but which pairs count depends on their order."""

    def __init__(self, cutoff: float, keep: int):
        super().__init__()
        self.cutoff = cutoff
        self.keep = keep
        self._neighbors = NeighborListOptions(cutoff=cutoff, full_list=True, strict=True)

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
        first = neighbors.samples.column("first_atom").to(torch.int64)
        n_atoms = system.positions.shape[0]
        # rank of each pair among its first atom's pairs, in list order
        order = torch.argsort(first, stable=True)
        counts = torch.bincount(first, minlength=n_atoms)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(first)
        rank[order] = torch.arange(first.shape[0]) - starts[first[order]]
        r2 = (vectors * vectors).sum(dim=1)
        pair_energy = (1.0 - r2 / (self.cutoff * self.cutoff)) ** 2
        pair_energy = torch.where(rank < self.keep, pair_energy, torch.zeros_like(pair_energy))
        energies = torch.zeros(n_atoms, dtype=vectors.dtype).index_add(0, first, pair_energy)
        atoms = torch.arange(n_atoms)
        block = TensorBlock(
            values=energies.reshape(-1, 1),
            samples=Labels(["system", "atom"], torch.stack([torch.zeros_like(atoms), atoms], 1)),
            components=[],
            properties=Labels(["energy"], torch.tensor([[0]])),
        )
        return {"energy": TensorMap(Labels(["_"], torch.tensor([[0]])), [block])}


def test_a_model_that_keeps_the_first_pairs_is_caught(frame):
    """12 of each atom's ~20 pairs within 4.5 Å: the check must fail on it."""
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[13, 29],
        interaction_range=4.5,
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype="float64",
    )
    model = AtomisticModel(FirstPairs(4.5, keep=12).eval(), ModelMetadata(), capabilities)
    with pytest.raises(AssertionError, match="order of the pairs beyond rounding"):
        assert_rounding_only(OrderedEvaluation(model, frame), float(np.finfo(np.float64).eps), "first pairs")
