"""Neighbour pairs for the model: vesin's search, a Verlet skin, and the blocks
metatomic wants.

The search itself is vesin's. On top of it, :class:`VerletPairs` keeps one full
list with ``cutoff + skin`` and only searches again when some atom moved more than
``skin / 2`` (or the cell, the periodicity or the atom count changed). Every call
then filters that list to each requested cutoff, and builds the distance vectors
from the positions with torch operations, so that forces and virial flow through
them by autograd.
"""

from typing import Optional, Tuple

import numpy as np
import torch
import vesin
from metatensor.torch import Labels, TensorBlock
from metatomic.torch import NeighborListOptions

_SAMPLE_NAMES = ["first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"]


class VerletPairs:
    """Full pair list with ``cutoff + skin``, rebuilt only when atoms moved enough."""

    def __init__(self, cutoff: float, skin: float):
        self.cutoff = cutoff
        self.skin = skin
        self.rebuilds = 0
        self._search = vesin.NeighborList(cutoff=cutoff + skin, full_list=True)
        self._reference: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        self._pairs: Optional[np.ndarray] = None
        self._shifts: Optional[np.ndarray] = None

    def pairs(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
        """(pairs (n, 2), cell shifts (n, 3)) of every pair within cutoff + skin."""
        if self._needs_rebuild(positions, cell, pbc):
            pairs, shifts = self._search.compute(
                points=positions, box=cell, periodic=pbc, quantities="PS", copy=True
            )
            self._pairs, self._shifts = pairs, shifts
            self._reference = (positions.copy(), cell.copy(), pbc.copy())
            self.rebuilds += 1
        return self._pairs, self._shifts

    def _needs_rebuild(self, positions, cell, pbc) -> bool:
        return needs_rebuild(self._reference, positions, cell, pbc, self.skin)


def needs_rebuild(reference, positions, cell, pbc, skin: float) -> bool:
    """Whether a list built at ``reference`` = (positions, cell, pbc) with this
    ``skin`` may miss pairs now: some atom moved more than skin/2, or the cell,
    the periodicity or the atom count changed."""
    if reference is None or skin == 0.0:
        return True
    old_positions, old_cell, old_pbc = reference
    if old_positions.shape != positions.shape:
        return True
    if not (np.array_equal(old_cell, cell) and np.array_equal(old_pbc, pbc)):
        return True
    displacement2 = ((positions - old_positions) ** 2).sum(axis=1)
    return bool(displacement2.max(initial=0.0) > 0.25 * skin * skin)


def half_list_keep(first, second, shift_a, shift_b, shift_c, where=torch.where):
    """The half-list rule: of the pairs (i, j, S) and (j, i, -S) of a full list,
    keep the one with i < j, or for i == j (a periodic self-image) the one whose
    first non-zero shift component is positive.

    Written with comparisons, ``&``, ``|`` and ``where`` only: the LAMMPS plugin's
    copy (``half_list_keep`` in ``mlipdrive_python_rules.h``) is generated from
    this function by ``lammps_plugin/generate_python_rules.py``, which calls it on
    C++ expressions.
    """
    first_nonzero = where(shift_a != 0, shift_a, where(shift_b != 0, shift_b, shift_c))
    return (first < second) | ((first == second) & (first_nonzero > 0))


def half_list_mask(pairs: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Keep one of (i, j, S) and (j, i, -S) from a full list (:func:`half_list_keep`)."""
    return half_list_keep(pairs[:, 0], pairs[:, 1], shifts[:, 0], shifts[:, 1], shifts[:, 2])


def neighbor_block(
    options: NeighborListOptions,
    cutoff: float,
    positions: torch.Tensor,
    cell: torch.Tensor,
    pairs: torch.Tensor,
    shifts: torch.Tensor,
) -> TensorBlock:
    """The block for one neighbour-list request, from candidate pairs.

    ``pairs``/``shifts`` (int32) are already a full or half list as ``options``
    asks (see :func:`half_list_mask`); they are filtered to ``cutoff``, the request's
    cutoff in the engine's length unit. Vectors are computed from ``positions`` and
    ``cell`` with torch, keeping their autograd graph.
    """
    with torch.no_grad():
        candidates = pair_vectors(positions, cell, pairs, shifts)
        squared = (candidates * candidates) @ candidates.new_ones(3)
        inside = torch.nonzero(squared < cutoff * cutoff).reshape(-1)
    pairs, shifts = pairs.index_select(0, inside), shifts.index_select(0, inside)
    # the vectors again, from the kept pairs only: a smaller graph to differentiate
    vectors = pair_vectors(positions, cell, pairs, shifts)
    device = positions.device
    return TensorBlock(
        values=vectors.reshape(-1, 3, 1),
        samples=Labels(_SAMPLE_NAMES, torch.hstack([pairs, shifts]), assume_unique=True),
        components=[Labels("xyz", torch.tensor([[0], [1], [2]], device=device))],
        properties=Labels("distance", torch.tensor([[0]], device=device)),
    )


def pair_vectors(positions, cell, pairs, shifts) -> torch.Tensor:
    """r_j - r_i + S @ cell for each pair (i, j) with cell shift S."""
    first = positions.index_select(0, pairs[:, 0])
    second = positions.index_select(0, pairs[:, 1])
    return second - first + shifts.to(cell.dtype) @ cell
