"""Neighbour pairs for the model: vesin's search, a Verlet skin, and the blocks
metatomic wants.

The search itself is vesin's. On top of it, :class:`VerletPairs` keeps one full
list with ``cutoff + skin`` and only searches again when some atom moved more than
``skin / 2`` (or the cell, the periodicity or the atom count changed). Every call
then filters that list (:class:`Candidates`, prepared once per search) to each
requested cutoff, and builds the distance vectors from the positions and the
cell, so that forces and virial flow through them by autograd.
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


#: The LAMMPS plugin's sorting margin, as a fraction of a model's largest
#: cutoff: at each sort of its candidate pairs, those shorter than cutoff -
#: margin are settled, those longer than cutoff + margin dropped until some atom
#: has moved margin / 2; a model that :func:`prunes_ghost_pairs` gets, as ghost
#: atoms, only those within cutoff + margin of a local atom at the last sort
#: (so ``mlipdrive advise`` reads its ghost shell from here; generated into
#: ``mlipdrive_python_rules.h``)
PAIR_SORT_MARGIN = 0.05


def prunes_ghost_pairs(interaction_range, max_cutoff):
    """The rule: a model passes no messages, and its domains may leave out the
    pairs between two ghosts, when its declared interaction range is not beyond
    its largest neighbour-list cutoff (metatomic's convention for a short-range
    model: range = cutoff; see :mod:`mlipdrive.halo`'s docstring). Written with
    comparisons, ``*`` and ``&`` only: the LAMMPS plugin's copy (whose
    ``message_passing`` is its negation) is generated from it by
    ``lammps_plugin/generate_python_rules.py``, like
    :func:`mlipdrive.neighbors.half_list_keep`."""
    return (max_cutoff > 0.0) & (interaction_range <= max_cutoff * (1.0 + 1e-12))


def half_list_mask(pairs: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Keep one of (i, j, S) and (j, i, -S) from a full list (:func:`half_list_keep`)."""
    return half_list_keep(pairs[:, 0], pairs[:, 1], shifts[:, 0], shifts[:, 1], shifts[:, 2])


class Candidates:
    """The candidate pairs of one neighbour-list build, and what each step
    reuses: int64 index columns (``index_add_`` with int32 indices is ~10x
    slower on CPU), the samples, and the offsets ``S @ cell``, computed again only
    when the cell's values change.

    ``pairs``/``shifts`` (int32) are a full or half list as the request asks
    (see :func:`half_list_mask`).
    """

    def __init__(self, pairs: torch.Tensor, shifts: torch.Tensor):
        self.first = pairs[:, 0].to(torch.int64)
        self.second = pairs[:, 1].to(torch.int64)
        self.samples = torch.hstack([pairs, shifts])
        self.shifts = shifts
        self._cell: Optional[torch.Tensor] = None
        self._offsets = torch.empty(0)

    def __len__(self) -> int:
        return self.first.shape[0]

    def offsets(self, cell: torch.Tensor) -> torch.Tensor:
        """``S @ cell``, without autograd."""
        cell = cell.detach()
        if self._cell is None or not torch.equal(self._cell, cell):
            self._offsets = self.shifts.to(cell.dtype) @ cell
            self._cell = cell.clone()
        return self._offsets


class _KeptVectors(torch.autograd.Function):
    """The vectors r_j - r_i + S @ cell of the kept candidates, taken from the
    values the filter computed; the backward scatters dE/dr onto the positions
    (int64 ``index_add_``) and gives dE/dcell = S^T dE/dr."""

    @staticmethod
    def forward(ctx, positions, cell, all_vectors, kept, candidates):
        ctx.save_for_backward(kept)
        ctx.candidates = candidates
        ctx.n_atoms = positions.shape[0]
        return all_vectors.index_select(0, kept)

    @staticmethod
    def backward(ctx, gradient):
        (kept,) = ctx.saved_tensors
        candidates = ctx.candidates
        positions_gradient = cell_gradient = None
        if ctx.needs_input_grad[0]:
            positions_gradient = gradient.new_zeros((ctx.n_atoms, 3))
            second = candidates.second.index_select(0, kept)
            positions_gradient.index_add_(0, second, gradient)
            # (alpha=-1 takes a slow path, ~10x slower than this negation)
            first = candidates.first.index_select(0, kept)
            positions_gradient.index_add_(0, first, gradient.neg())
        if ctx.needs_input_grad[1]:
            shifts = candidates.shifts.index_select(0, kept).to(gradient.dtype)
            cell_gradient = shifts.transpose(0, 1) @ gradient
        return positions_gradient, cell_gradient, None, None, None


def neighbor_block(
    options: NeighborListOptions,
    cutoff: float,
    positions: torch.Tensor,
    cell: torch.Tensor,
    candidates: Candidates,
) -> TensorBlock:
    """The block for one neighbour-list request: the ``candidates`` within
    ``cutoff`` (the request's cutoff in the engine's length unit).

    The vectors r_j - r_i + S @ cell are functions of ``positions`` and ``cell``
    for autograd (forces, virial), computed once per call for every candidate.
    """
    with torch.no_grad():
        offsets = candidates.offsets(cell)
        all_vectors = (
            positions.index_select(0, candidates.second)
            - positions.index_select(0, candidates.first)
            + offsets
        )
        squared = (all_vectors * all_vectors) @ all_vectors.new_ones(3)
        kept = torch.nonzero(squared < cutoff * cutoff).reshape(-1)
    vectors = _KeptVectors.apply(positions, cell, all_vectors, kept, candidates)
    device = positions.device
    return TensorBlock(
        values=vectors.reshape(-1, 3, 1),
        samples=Labels(_SAMPLE_NAMES, candidates.samples.index_select(0, kept), assume_unique=True),
        components=[Labels("xyz", torch.tensor([[0], [1], [2]], device=device))],
        properties=Labels("distance", torch.tensor([[0]], device=device)),
    )
