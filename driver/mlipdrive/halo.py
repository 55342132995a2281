"""Spatial domains and ghost halos: the geometry of the MPI domain decomposition.

There is no MPI here. Everything is a pure function of the structure that rank 0
broadcasts, so every rank computes the same domains without further messages, and
the tests can run all the domains of a grid one after the other in one process.

Frame. Domains are boxes in the fractional coordinates of a *frame*: the cell
vectors along periodic axes and, along non-periodic axes, unit vectors orthogonal
to the periodic ones, so that a fractional coordinate there is a length in the
engine's unit. Periodic axes span [0, 1) (atoms are wrapped); non-periodic axes
span the atoms' bounding box. The frame works for any triclinic cell.

Grid. The region is cut into ``g0 × g1 × g2`` equal boxes, one per rank, rank
``r`` taking the box ``numpy.unravel_index(r, grid)``. The grid minimises the
volume that a domain plus its halo covers (:func:`choose_grid`): long directions
are cut first, and slabs while the domains are thinner than the range.

Halo. A domain's atoms are its *local* atoms (those whose wrapped fractional
coordinates fall in it) and *ghosts*: the periodic images of atoms within the
model's interaction range of a local atom, minus the local atoms themselves.
Ghosts are separate atoms; each remembers its owner, the atom it is an image of.
A periodic axis that is not cut stays periodic in the domain's system (the model
sees those images through cell shifts, so they need no ghosts); along cut and
free axes the domain's system is not periodic. The ghosts are found in two
passes: the images inside the domain's box widened by ``range / spacing`` in
fractional coordinates, ``spacing`` being the distance between lattice planes
(volume / |b × c| for axis a) -- a box that holds every point within ``range`` of
the domain for any cell shape, with as many image shells as a box smaller than
the range needs -- then, of those, the ones within ``range`` of a local atom (a
k-d tree query), which drops the box's edges and corners.

With every atom within the interaction range of every local atom present, and
every pair among them within the cutoff in the pair list, the model's energy of
the local atoms is exactly their energy in the whole system (for message passing
models ``interaction_range`` is cutoff × layers: every atom on a chain of
messages to a local atom is within that range of it).

Pruning (short-range models only). A model whose declared interaction range
equals its largest neighbour-list cutoff (:func:`short_range`; LJ, SOAP-BPNN,
ACE-like models) passes no messages: by metatomic's contract for
``interaction_range`` (for a short-range model "the same as the largest
neighbors list cutoff"), an atom's energy is a function of its own environment,
the pairs within the cutoff that it is part of. The energy summed here is that
of the local atoms, so it depends only on the pairs with at least one local atom;
the forces and the virial are its derivatives, so they do too. A pair between
two ghosts changes no local energy and no force: :class:`DomainEvaluator` leaves
them out (``DomainEvaluator.pruned``), and the model no longer does the ghosts'
work. The ghosts' own energies, computed from their partial environments, are
not selected and not summed. Ghosts that are in no pair with a local atom could
go too: the halo holds only images within range + skin (= cutoff + skin) of a
local atom at its last rebuild, so the ghosts without a pair at a step are
those in the skin-thick outer layer. They stay here (the pairs are filtered to
the cutoff at each step, the domain's atoms only at a rebuild); the LAMMPS
plugin, whose shell is LAMMPS's, leaves them out at each sort of its pairs,
for a few % of the model's time (benchmarks/results/ranks_short_range).
A message-passing model (range > cutoff: MACE, PET) carries information along
chains of pairs, ghost-ghost pairs included, and keeps every pair. A model that
asks for no neighbour list (GAP: featomic searches its neighbours itself) has no
cutoff to compare: nothing is left out, the model sees the whole halo and the
energies of the local atoms are selected; its domains are periodic along no
axis, every image a ghost (:class:`DomainList`), because featomic cannot search
in a cell with zero vectors (a domain's cell along the cuts). A model that read,
for an atom, the pairs *among* its neighbours from the list would break this
contract: it has to declare a range beyond its cutoff.
"""

import dataclasses
import itertools
from typing import Optional, Tuple

import numpy as np
import vesin
from scipy.spatial import cKDTree

from .neighbors import needs_rebuild, prunes_ghost_pairs
from .potential import Results, timed
from .verify import check_domain, current_evaluation

# extra width of the halo, in fractional coordinates: an atom on a domain face may
# be counted on either side after round-off, and an extra ghost is harmless
_HALO_MARGIN = 1e-9
# relative extra cutoff of the pair search: the core filters each cutoff itself,
# a pair that vesin would round to just outside must not be lost
_SEARCH_MARGIN = 1e-6


@dataclasses.dataclass
class Domain:
    """The atoms one rank evaluates: its local atoms first, then its ghosts."""

    #: (m, 3) positions: the local atoms (wrapped into the cell), then the ghosts
    positions: np.ndarray
    #: (m,) index in the whole structure of the atom each entry is (an image of)
    owners: np.ndarray
    #: (m, 3) integer cell shifts: entry e is ``positions[owners[e]] + shifts[e] @ cell``
    #: of the structure's positions (the wrapping of local atoms included)
    shifts: np.ndarray
    #: how many of the entries are local atoms (the first ``n_local``)
    n_local: int
    #: (3, 3) cell of the domain's system: the structure's cell vectors along
    #: ``pbc``, zero elsewhere
    cell: np.ndarray
    #: (3,) periodicity of the domain's system: the periodic axes that are not cut
    pbc: np.ndarray

    @property
    def n_ghosts(self) -> int:
        return len(self.owners) - self.n_local

    def move(self, positions: np.ndarray, cell: np.ndarray):
        """Positions of the entries for new positions of the structure's atoms
        (same cell), the images keeping their owners and shifts."""
        self.positions = positions[self.owners] + self.shifts @ cell


class Decomposition:
    """A structure cut into ``n_domains`` spatial domains with halos.

    :param positions: (n, 3) positions
    :param cell: (3, 3) cell, one lattice vector per row
    :param pbc: (3,) periodicity; a periodic axis needs a non-zero cell vector
    :param n_domains: number of domains (MPI ranks)
    :param interaction_range: halo width, in the unit of ``positions``
    :param grid: force this grid instead of :func:`choose_grid`'s
    :param explicit_images: also make ghosts along periodic axes that are not cut
        (by default a domain stays periodic along those, which needs no ghosts)
    """

    def __init__(
        self,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc: np.ndarray,
        n_domains: int,
        interaction_range: float,
        grid: Optional[Tuple[int, int, int]] = None,
        explicit_images: bool = False,
    ):
        if not np.isfinite(interaction_range) or interaction_range < 0:
            raise ValueError(
                f"cannot build halos for an interaction range of {interaction_range}; "
                "a model with an infinite range cannot be split into domains, run "
                "it on one MPI rank"
            )
        self.cell = np.asarray(cell, dtype=np.float64)
        self.periodic = np.asarray(pbc, dtype=bool).reshape(3)
        self.interaction_range = float(interaction_range)
        self.frame = _frame(self.cell, self.periodic)
        self._wrap(np.asarray(positions, dtype=np.float64))
        self._choose_grid(n_domains, grid, explicit_images)
        self._assign()

    def _wrap(self, positions: np.ndarray):
        """Fractional coordinates wrapped into [0, 1) along periodic axes, the
        home positions (the wrapped atoms, ``positions + wraps @ cell``) and the
        decomposed region (bounding box along free axes)."""
        # plane spacing: distance between the lattice planes normal to each axis,
        # the inverse norm of the reciprocal vectors (the columns of the inverse)
        inverse = np.linalg.inv(self.frame)
        self.spacing = 1.0 / np.linalg.norm(inverse, axis=0)
        fractional = positions @ inverse
        floor = np.where(self.periodic, np.floor(fractional), 0.0)
        self.fractional = fractional - floor
        self.positions = positions
        self.wraps = -floor.astype(np.int64)
        self.home = positions - floor @ self.frame if floor.any() else positions
        self.lower = np.zeros(3)
        self.upper = np.ones(3)
        if len(positions) and not self.periodic.all():
            lo, hi = self.fractional.min(axis=0), self.fractional.max(axis=0)
            self.lower = np.where(self.periodic, 0.0, lo)
            self.upper = np.where(self.periodic, 1.0, hi)

    def _choose_grid(self, n_domains: int, grid, explicit_images: bool):
        """The grid (given or :func:`choose_grid`'s), the axes that stay periodic
        in every domain and the domains' cell."""
        if grid is None:
            lengths = (self.upper - self.lower) * self.spacing
            grid = choose_grid(
                n_domains,
                lengths,
                self.interaction_range,
                halo_when_uncut=self.periodic & explicit_images,
            )
        if int(np.prod(grid)) != n_domains:
            raise ValueError(f"grid {tuple(grid)} does not have {n_domains} domains")
        self.grid = tuple(int(g) for g in grid)
        # a periodic axis that is not cut stays periodic in every domain: the model
        # sees the images through cell shifts, and no ghost is needed along it
        self.kept_periodic = self.periodic & (np.array(self.grid) == 1) & (not explicit_images)
        # metatomic wants zero cell vectors along the non-periodic axes
        self.domain_cell = np.where(self.kept_periodic[:, None], self.cell, 0.0)

    def _assign(self):
        """``owner_domain``: the domain (= rank) each atom is a local atom of."""
        width = self.upper - self.lower
        scaled = (self.fractional - self.lower) / np.where(width > 0, width, 1.0)
        cells = np.floor(scaled * self.grid).astype(np.int64)
        cells = np.clip(cells, 0, np.array(self.grid) - 1)
        self.owner_domain = np.ravel_multi_index(cells.T, self.grid)

    def bounds(self, domain: int) -> Tuple[np.ndarray, np.ndarray]:
        """Lower and upper fractional corners of ``domain``."""
        index = np.array(np.unravel_index(domain, self.grid))
        width = (self.upper - self.lower) / self.grid
        return self.lower + index * width, self.lower + (index + 1) * width

    def domain(self, domain: int) -> Domain:
        """Local atoms and ghost halo of ``domain`` (0 <= domain < n_domains).

        Ghosts are first the images inside the domain's box widened by the range,
        then only those within the range of some local atom (a k-d tree query;
        this drops the widened box's corners and edges, about a fifth of the
        ghosts of a cubic domain). A domain without local atoms gets no ghosts.
        """
        local = np.flatnonzero(self.owner_domain == domain)
        owners, shifts = local, self.wraps[local]
        if len(local) and self.interaction_range > 0.0:
            lower, upper = self.bounds(domain)
            reach = self.interaction_range / self.spacing + _HALO_MARGIN
            lower, upper = lower - reach, upper + reach
            ghosts, ghost_shifts, positions = self._images(
                np.arange(len(self.home)), lower, upper, ghosts=True, local=local
            )
            if len(ghosts):
                # the exact test: within the range of a local atom, periodic along
                # the kept axes (the tree holds the local atoms' images along those)
                _, _, images = self._images(local, lower, upper, ghosts=False)
                bound = self.interaction_range * (1.0 + 1e-9) + 1e-9
                distance, _ = cKDTree(images).query(
                    positions, k=1, distance_upper_bound=bound
                )
                near = np.isfinite(distance)
                owners = np.concatenate([local, ghosts[near]])
                shifts = np.concatenate([shifts, ghost_shifts[near]])
        result = Domain(
            positions=np.zeros((0, 3)),
            owners=owners,
            shifts=shifts,
            n_local=len(local),
            cell=self.domain_cell,
            pbc=self.kept_periodic.copy(),
        )
        result.move(self.positions, self.cell)
        return result

    def _images(self, atoms, lower, upper, ghosts: bool, local=None):
        """(owners, cell shifts, positions) of the images of ``atoms`` inside the
        fractional box [lower, upper].

        ``ghosts``: images along the cut periodic axes (the domain's ghosts, the
        local atoms themselves excluded); otherwise images along the kept periodic
        axes (the local atoms' periodic copies, themselves included).
        """
        masks = []
        for axis in range(3):
            s = self.fractional[atoms, axis]
            imaged = self.periodic[axis] and (self.kept_periodic[axis] != ghosts)
            if imaged:
                # s is in [0, 1]: the shifts k with s + k in [lower, upper]
                shifts = range(int(np.floor(lower[axis])) - 1, int(np.ceil(upper[axis])) + 1)
            else:
                shifts = (0,)
            axis_masks = {}
            for k in shifts:
                if self.kept_periodic[axis] and ghosts:
                    inside = np.ones(len(atoms), dtype=bool)
                else:
                    inside = (s + k >= lower[axis]) & (s + k <= upper[axis])
                if inside.any():
                    axis_masks[k] = inside
            masks.append(axis_masks)

        exclude = None
        if ghosts:
            exclude = np.zeros(len(atoms), dtype=bool)
            exclude[local] = True
        owners, shifts, positions = [], [], []
        for k0, k1, k2 in itertools.product(*(sorted(m) for m in masks)):
            inside = masks[0][k0] & masks[1][k1] & masks[2][k2]
            if exclude is not None and k0 == k1 == k2 == 0:
                inside &= ~exclude
            images = atoms[inside]
            if len(images):
                owners.append(images)
                shifts.append(self.wraps[images] + np.array([k0, k1, k2]))
                shift = np.array([k0, k1, k2], dtype=np.float64) @ self.frame
                positions.append(self.home[images] + shift)
        if not owners:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3))
        return np.concatenate(owners), np.concatenate(shifts), np.concatenate(positions)


def choose_grid(
    n_domains: int, lengths, interaction_range: float, halo_when_uncut=(False, False, False)
) -> Tuple[int, int, int]:
    """The ``(g0, g1, g2)`` with product ``n_domains`` whose domains, halo
    included, cover the least volume: ``prod(length / g + halo)``, where ``halo``
    is twice the range along a cut axis and zero along an uncut one (a periodic
    axis that is not cut stays periodic, a free one has no atoms beyond; unless
    ``halo_when_uncut`` says otherwise for that axis). ``lengths`` are the
    region's perpendicular extents. Long directions are cut first; while domains
    are thinner than the range, slabs beat cubes (their halo is on two faces
    only). A flat direction is never cut. Ties go to the grid that cuts the
    earlier axes more.
    """
    if n_domains < 1:
        raise ValueError(f"need at least one domain, got {n_domains}")
    lengths = np.asarray(lengths, dtype=np.float64)
    # a flat region (a layer, zero extent) must still rank the in-plane cuts
    lengths = np.maximum(lengths, 1e-9 * max(lengths.max(initial=0.0), 1.0))
    halo_when_uncut = np.asarray(halo_when_uncut, dtype=bool)
    best, best_cost = (n_domains, 1, 1), np.inf
    for g0 in range(n_domains, 0, -1):
        if n_domains % g0:
            continue
        for g1 in range(n_domains // g0, 0, -1):
            if (n_domains // g0) % g1:
                continue
            grid = np.array([g0, g1, n_domains // (g0 * g1)])
            halo = np.where((grid > 1) | halo_when_uncut, 2.0 * interaction_range, 0.0)
            cost = float(np.prod(lengths / grid + halo))
            # relative tolerance: a cubic box must not pick its grid by round-off
            if cost < best_cost * (1.0 - 1e-12):
                best, best_cost = tuple(int(g) for g in grid), cost
    return best


def _frame(cell: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """Cell vectors on periodic axes; unit vectors orthogonal to them elsewhere.

    Closed formulas (no SVD) so that every rank gets bit-identical frames.
    """
    frame = np.zeros((3, 3))
    axes = np.flatnonzero(periodic)
    others = np.flatnonzero(~periodic)
    frame[axes] = cell[axes]
    if len(axes) == 3:
        pass
    elif len(axes) == 2:
        normal = np.cross(cell[axes[0]], cell[axes[1]])
        frame[others[0]] = normal / np.linalg.norm(normal)
    elif len(axes) == 1:
        direction = cell[axes[0]] / np.linalg.norm(cell[axes[0]])
        # the Cartesian axis least aligned with the periodic vector
        helper = np.eye(3)[np.argmin(np.abs(direction))]
        first = helper - helper.dot(direction) * direction
        first /= np.linalg.norm(first)
        frame[others[0]] = first
        frame[others[1]] = np.cross(direction, first)
    else:
        frame = np.eye(3)
    if abs(np.linalg.det(frame)) < 1e-12 * max(np.abs(frame).max(), 1.0) ** 3:
        raise ValueError(
            f"the periodic cell vectors {cell[axes].tolist()} are linearly "
            "dependent; give a cell with a non-zero volume"
        )
    return frame


def short_range(potential) -> bool:
    """:func:`prunes_ghost_pairs` for a loaded :class:`~mlipdrive.potential.Potential`."""
    cutoff = max(potential.cutoffs, default=0.0)
    return bool(prunes_ghost_pairs(potential.interaction_range, cutoff))


class DomainEvaluator:
    """Evaluates one :class:`Domain` with a potential, through the explicit-pairs
    path of :meth:`Potential.compute`, and spreads the results over the whole
    structure (ghost forces added onto their owners). ``skin``: the pair search
    reaches that much beyond the model's cutoff (see :class:`DomainList`).
    """

    def __init__(self, potential, skin: float = 0.0):
        self.potential = potential
        cutoff = max(potential.cutoffs, default=0.0)
        self._search = (
            vesin.NeighborList(
                cutoff=cutoff * (1.0 + _SEARCH_MARGIN) + skin, full_list=True
            )
            if cutoff > 0
            else None
        )
        #: the pairs between two ghosts are left out (:func:`short_range`)
        self.pruned = short_range(potential)
        #: how many candidate pairs the model was given in the last evaluation
        self.pairs_given = 0

    def pairs(self, domain: Domain):
        """Full pair list (pairs (m, 2), cell shifts (m, 3)) of the domain's atoms,
        periodic along the domain's periodic axes; for a short-range model only
        the pairs with at least one local atom."""
        if self._search is None or (len(domain.positions) < 2 and not domain.pbc.any()):
            return np.zeros((0, 2), dtype=np.int32), np.zeros((0, 3), dtype=np.int32)
        pairs, shifts = self._search.compute(
            points=domain.positions, box=domain.cell, periodic=domain.pbc, quantities="PS"
        )
        if self.pruned:
            # local atoms come first: a pair touches one if its smaller index does
            keep = pairs.min(axis=1) < domain.n_local
            pairs, shifts = pairs[keep], shifts[keep]
        # int32, as the core wants them: no conversion on every reuse
        return pairs.astype(np.int32), shifts.astype(np.int32, copy=False)

    def evaluate(
        self,
        domain: Domain,
        types: np.ndarray,
        *,
        forces: bool = True,
        stress: bool = True,
        per_atom: bool = False,
        pairs=None,
        structure_cell=None,
        structure_pbc=None,
    ) -> Results:
        """This domain's share: the energy of its local atoms, forces on all
        atoms of the structure ((n, 3), zero away from the domain), its virial,
        and per-atom energies and uncertainties ((n,), zero outside the domain's
        local atoms). ``types`` are the types of the whole structure; ``pairs``
        the domain's :meth:`pairs` if already computed. A domain without local
        atoms gives zeros without calling the model.

        With the stress from the model's head (``non_conservative`` 'on' or
        'stress') the model gets ``structure_cell`` and ``structure_pbc`` (the
        pairs keep the domain's shifts, zero along cut axes): its stress is then
        per volume of the whole structure, and the domains' virials (``-stress *
        volume``) add up.
        """
        share = self._zeros(len(types), forces, stress, per_atom)
        if domain.n_local == 0:
            self.pairs_given = 0
            return share
        cell, pbc = domain.cell, domain.pbc
        if self.potential.settings.stress_from_head and structure_cell is not None:
            cell, pbc = structure_cell, structure_pbc
        pairs = self.pairs(domain) if pairs is None else pairs
        self.pairs_given = len(pairs[0])
        results = self.potential.compute(
            domain.positions,
            types[domain.owners],
            cell,
            pbc,
            forces=forces,
            stress=stress,
            per_atom=per_atom,
            # the local atoms are the first n_local, so the per-atom energies come
            # back in that order whatever order the model sorts its samples in
            selected_atoms=np.arange(domain.n_local),
            pairs=pairs,
            pairs_pbc=domain.pbc,
            pairs_local=domain.n_local if self.pruned else None,
            partial=True,
        )
        _spread(share, results, domain)
        return share

    def _zeros(self, n_atoms: int, forces: bool, stress: bool, per_atom: bool) -> Results:
        """A share of nothing, with the arrays the caller asked for."""
        share = Results(
            energy=0.0,
            forces=np.zeros((n_atoms, 3)) if forces else None,
            virial=np.zeros((3, 3)) if stress else None,
            energies=np.zeros(n_atoms) if per_atom else None,
        )
        if self.potential.outputs.uncertainty is not None:
            share.energy_uncertainty = np.zeros(n_atoms)
        return share


def _spread(share: Results, results: Results, domain: Domain):
    """The domain's ``results`` written into the whole-structure ``share``: ghost
    forces added onto the atoms they are images of, per-atom values of the local
    atoms at their atoms' indices."""
    share.energy = results.energy
    local = domain.owners[: domain.n_local]
    if share.forces is not None:
        for axis in range(3):
            share.forces[:, axis] = np.bincount(
                domain.owners, weights=results.forces[:, axis], minlength=len(share.forces)
            )
    if share.virial is not None:
        share.virial = results.virial
    if share.energies is not None:
        share.energies[local] = results.energies
    if results.energy_uncertainty is not None:
        share.energy_uncertainty[local] = results.energy_uncertainty[: domain.n_local]


class DomainList:
    """One rank's domain and pair list for a sequence of structures (MD steps),
    reused while no atom moved more than ``skin / 2``, like a Verlet list.

    The halo is built with ``interaction_range + skin`` and the pairs with
    ``cutoff + skin``; in between, the entries keep their owners and shifts and
    only move with their atoms (local atoms may leave their domain by up to
    ``skin / 2``: ownership changes at the next rebuild). Any atom within the
    range of a local atom now was within range + skin of it at the rebuild, and
    any pair within the cutoff now was within cutoff + skin, so the results are
    those of a fresh decomposition. A new cell, periodicity or atom count
    rebuilds. Every rank takes the same decision from the same positions.

    ``skin = 0`` rebuilds at every step: cheaper where the model's cost per
    ghost outweighs the neighbour search (large models); compare with
    ``mlipdrive bench --engines driver --settings default skin=0``.
    """

    def __init__(
        self,
        potential,
        n_domains: int,
        rank: int,
        skin: float = 0.0,
        grid: Optional[Tuple[int, int, int]] = None,
    ):
        self.evaluator = DomainEvaluator(potential, skin)
        self.n_domains = n_domains
        self.rank = rank
        self.interaction_range = potential.interaction_range
        self.skin = float(skin)
        self.grid = grid
        self.rebuilds = 0
        self.domain: Optional[Domain] = None
        self.pairs = None
        self._reference = None
        # the grid of the last rebuild: the verify setting's fresh domain must
        # use it (the automatic choice for range + skin may differ from range's)
        self._grid_in_use = grid
        # a model that asks for no neighbour list finds its neighbours itself,
        # from the cell and pbc (featomic): its domains are periodic along no
        # axis, with ghosts for the images along every periodic axis (featomic
        # refuses a cell with some zero vectors, the domains' cell along cuts)
        self._explicit_images = not potential.requested_neighbor_lists
        #: seconds spent building domains and pair lists
        self.timings = {"domain": 0.0, "pairs": 0.0}

    def update(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
        """(domain, pairs) for these positions; pairs is None for an empty domain.
        With the ``verify`` setting, the domain is checked against a fresh build
        (:func:`mlipdrive.verify.check_domain`)."""
        if self._needs_rebuild(positions, cell, pbc):
            self._rebuild(positions, cell, pbc)
        else:
            with timed(self.timings, "domain"):
                self.domain.move(positions, cell)
        if self.evaluator.potential.settings.verify:
            with timed(self.timings, "verify"):
                self._verify(positions, cell, pbc)
        return self.domain, self.pairs

    def _rebuild(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
        """A new domain (halo range + skin) and its pairs (cutoff + skin)."""
        with timed(self.timings, "domain"):
            decomposition = Decomposition(
                positions,
                cell,
                pbc,
                self.n_domains,
                self.interaction_range + self.skin,
                grid=self.grid,
                explicit_images=self._explicit_images,
            )
            self.domain = decomposition.domain(self.rank)
            self._grid_in_use = decomposition.grid
        with timed(self.timings, "pairs"):
            self.pairs = self.evaluator.pairs(self.domain) if self.domain.n_local else None
        self._reference = (positions.copy(), cell.copy(), np.array(pbc, dtype=bool))
        self.rebuilds += 1

    def _verify(self, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
        """The kept domain against one built now for its local atoms; the domain's
        cell and pbc from a new decomposition with the grid in use."""
        fresh = Decomposition(
            positions, cell, pbc, self.n_domains, self.interaction_range,
            grid=self._grid_in_use, explicit_images=self._explicit_images,
        )
        check_domain(
            self.domain, positions, cell, pbc, fresh.domain_cell, fresh.kept_periodic,
            self.interaction_range, current_evaluation(self.evaluator.potential),
        )

    def _needs_rebuild(self, positions, cell, pbc) -> bool:
        return needs_rebuild(self._reference, positions, cell, pbc, self.skin)
