"""Ghost shells of a spatial domain decomposition, from geometry alone, and
the system size at which more MPI ranks start to pay.

Each rank of a decomposed run evaluates its local atoms *and* a shell of ghost
atoms as thick as the model's interaction range (+ the neighbour skin): for a
message-passing model that shell can hold many times more atoms than the
domain. How many, is geometry (a box of edge lengths ``lengths`` holding
``atoms`` atoms at uniform density):

- LAMMPS (:func:`lammps_ghosts`): the processor grid that minimises the
  domains' surface, ghosts within ``shell`` of the domain along the axes it cuts
  (box corners included): ``pair_style mlipdrive`` folds the images along the
  periodic axes the grid does not cut onto their atoms (its mixed layout; one
  rank: the periodic layout, without ghosts). For a model whose range is its
  cutoff the plugin keeps only the ghosts within cutoff × (1 +
  ``PAIR_SORT_MARGIN``) of a local atom: Steiner's shape, as for the halo.
- our i-PI client under MPI (:func:`halo_ghosts`, :mod:`mlipdrive.halo`):
  :func:`mlipdrive.halo.choose_grid`'s grid, ghosts only along cut axes and
  only within ``shell`` of the domain (Steiner's formula for a box). The halo
  keeps only ghosts within ``shell`` of some local *atom*, so this is an upper
  bound: near the shell's outer edge some places have no local atom in reach.

Crystals fill a shell by lattice planes, not by volume: ``advise`` scales the
geometric count by the ghosts counted at the measured size (the plugin's
count on rank 0, the halo's domains), :attr:`RankCosts.ghost_scale`.

:func:`crossover` combines these counts with costs measured at one size into
the size at which R ranks beat the best one-rank layout, assuming that every
cost per atom (local or ghost) stays what was measured (stated as such).
"""

import dataclasses
import itertools
import math
from typing import Optional, Sequence, Tuple

import numpy as np


def lammps_grid(ranks: int, lengths: Sequence[float]) -> Tuple[int, int, int]:
    """LAMMPS's default processor grid: the factorisation of ``ranks`` whose
    domains have the least surface (ties: the earlier axes cut more)."""
    lengths = np.asarray(lengths, dtype=float)
    best, best_area = (ranks, 1, 1), math.inf
    for grid in _factorisations(ranks):
        sub = lengths / np.array(grid)
        area = sub[0] * sub[1] + sub[0] * sub[2] + sub[1] * sub[2]
        if area < best_area * (1.0 - 1e-12):
            best, best_area = grid, area
    return best


def _factorisations(n: int):
    for a in range(n, 0, -1):
        if n % a:
            continue
        for b in range(n // a, 0, -1):
            if (n // a) % b == 0:
                yield (a, b, n // (a * b))


def lammps_ghosts(atoms: float, lengths: Sequence[float], ranks: int, shell: float,
                  within_reach: bool = False) -> float:
    """Ghost atoms per rank that ``pair_style mlipdrive`` evaluates in a
    periodic box: those across the axes the processor grid cuts (0 on one rank:
    the periodic layout folds every ghost onto its owner); ``within_reach``: only
    those within ``shell`` of the domain (a model whose range is its cutoff,
    whose ghosts out of every local atom's reach the plugin leaves out), else
    LAMMPS's whole box-shaped shell."""
    if ranks <= 1:
        return 0.0
    lengths = np.asarray(lengths, dtype=float)
    grid = np.array(lammps_grid(ranks, lengths))
    if within_reach:
        return _steiner_ghosts(atoms, lengths, grid, shell)
    sub = lengths / grid
    density = atoms / float(np.prod(lengths))
    grown = sub + np.where(grid > 1, 2.0 * shell, 0.0)
    return density * float(np.prod(grown) - np.prod(sub))


def halo_ghosts(atoms: float, lengths: Sequence[float], ranks: int, shell: float) -> float:
    """Ghost atoms per domain of :mod:`mlipdrive.halo` (our i-PI client and
    ``DistributedPotential``): within ``shell`` of the domain, along cut axes."""
    from mlipdrive.halo import choose_grid

    if ranks <= 1:
        return 0.0
    lengths = np.asarray(lengths, dtype=float)
    return _steiner_ghosts(atoms, lengths, np.array(choose_grid(ranks, lengths, shell)), shell)


def _steiner_ghosts(atoms: float, lengths: np.ndarray, grid: np.ndarray, shell: float) -> float:
    """Atoms within ``shell`` of one domain of ``grid``, outside it, along the cut axes."""
    sub = lengths / grid
    cut = [axis for axis in range(3) if grid[axis] > 1]
    # Steiner: the points within `shell` of a box, growing only along the cut
    # axes, are the box plus, for every set S of cut axes, the |S|-ball of
    # radius `shell` times the box's extent along the other axes
    ball = {0: 1.0, 1: 2.0 * shell, 2: math.pi * shell**2, 3: 4.0 / 3.0 * math.pi * shell**3}
    volume = 0.0
    for size in range(len(cut) + 1):
        for axes in itertools.combinations(cut, size):
            rest = [sub[axis] for axis in range(3) if axis not in axes]
            volume += ball[size] * float(np.prod(rest))
    density = atoms / float(np.prod(lengths))
    return density * (volume - float(np.prod(sub)))


def scaled_lengths(lengths: Sequence[float], atoms0: float, atoms: float) -> np.ndarray:
    """Edge lengths of the same structure replicated to ``atoms`` atoms (same
    shape and density)."""
    return np.asarray(lengths, dtype=float) * (atoms / atoms0) ** (1.0 / 3.0)


#: how what the ranks paid beyond their share of the one-rank work is carried
#: to other sizes: all of it per ghost, or per ghost what a local atom costs
#: and the rest per step (MPI latency, synchronisation)
EXTRA_PER_GHOST, EXTRA_FIXED = "per-ghost", "fixed"


@dataclasses.dataclass
class RankCosts:
    """What one engine's measured rows say, at ``atoms`` atoms (ms per step).

    ``one_rank_ms`` is 1 rank x 1 thread, of which ``serial_ms`` does not split
    over ranks (i-PI's own side of the step); ``ranks_ms`` is ``ranks`` ranks x
    1 thread; ``best_ms`` the best one-rank layout on the same cores (any
    threads). One measurement cannot tell a cost per ghost from a cost per
    step: ``extra`` says which the projection assumes (:data:`EXTRA_PER_GHOST`
    or :data:`EXTRA_FIXED`).
    """

    engine: str
    atoms: int
    lengths: Tuple[float, float, float]
    shell: float  # Å: ghost shell thickness (see advise.model_facts)
    ranks: int
    one_rank_ms: float
    serial_ms: float
    ranks_ms: float
    best_ms: float
    #: ghosts counted at ``atoms`` (the engine's own) over the geometric count:
    #: a crystal's lattice planes make the shell hold a few % more or less
    ghost_scale: float = 1.0
    extra: str = EXTRA_PER_GHOST
    #: LAMMPS: the model's ghosts are only those within ``shell`` of a local
    #: atom (:func:`lammps_ghosts`)
    within_reach: bool = False

    def ghosts(self, atoms: float) -> float:
        lengths = scaled_lengths(self.lengths, self.atoms, atoms)
        if self.engine == "ipi":
            counted = halo_ghosts(atoms, lengths, self.ranks, self.shell)
        else:
            counted = lammps_ghosts(atoms, lengths, self.ranks, self.shell, self.within_reach)
        return self.ghost_scale * counted

    @property
    def local_ms(self) -> float:
        """Measured cost of one local atom (ms/step) on one rank."""
        return (self.one_rank_ms - self.serial_ms) / self.atoms

    @property
    def extra_ms(self) -> float:
        """What the ranks' step cost beyond the serial part and their share of
        the one-rank work (ghosts, communication); 0 where nothing is left."""
        parallel = self.one_rank_ms - self.serial_ms
        return max(self.ranks_ms - self.serial_ms - parallel / self.ranks, 0.0)

    @property
    def ghost_ms(self) -> float:
        """Cost of one ghost atom (ms/step) as the projection carries it."""
        ghosts = self.ghosts(self.atoms)
        per_ghost = self.extra_ms / ghosts if ghosts > 0 else 0.0
        return per_ghost if self.extra == EXTRA_PER_GHOST else min(per_ghost, self.local_ms)

    @property
    def fixed_ms(self) -> float:
        """Cost per step that does not grow with the size (0 for per-ghost)."""
        return max(self.extra_ms - self.ghost_ms * self.ghosts(self.atoms), 0.0)

    def predicted_ranks_ms(self, atoms: float) -> float:
        """The ranks' ms/step at ``atoms`` atoms, every cost as measured."""
        scale = atoms / self.atoms
        parallel = self.one_rank_ms - self.serial_ms
        return ((self.serial_ms + parallel / self.ranks) * scale
                + self.ghost_ms * self.ghosts(atoms) + self.fixed_ms)

    def predicted_best_ms(self, atoms: float) -> float:
        return self.best_ms * atoms / self.atoms


@dataclasses.dataclass
class Crossover:
    """When ``ranks`` ranks start to beat the best one-rank layout."""

    ranks: int
    #: atoms from which the ranks are faster (None: never, at any size)
    atoms: Optional[float]
    #: the ghosts' share of a rank's atoms at that size: ranks pay below it
    ghost_share_threshold: Optional[float]
    #: ghosts' share and the cost of one ghost relative to one local atom, measured
    ghost_share_measured: float
    ghost_cost_ratio: float


def crossover(costs: RankCosts, largest: float = 1e10) -> Crossover:
    """The size at which ``costs.ranks`` ranks overtake the best one-rank
    layout, by bisection on log(atoms): the ranks' cost per atom falls with
    size (the shell's share shrinks as atoms^-1/3, a fixed cost as 1/atoms),
    the one-rank cost per atom is constant."""
    local_ms = costs.local_ms
    ratio = costs.ghost_ms / local_ms if local_ms > 0 else math.inf
    measured = _share(costs, costs.atoms)

    def pays(atoms: float) -> bool:
        return costs.predicted_ranks_ms(atoms) < costs.predicted_best_ms(atoms)

    if not pays(largest):
        return Crossover(costs.ranks, None, None, measured, ratio)
    low, high = 1.0, largest
    if pays(low):
        high = low
    while high / low > 1.001:
        middle = math.sqrt(low * high)
        low, high = (low, middle) if pays(middle) else (middle, high)
    return Crossover(costs.ranks, high, _share(costs, high), measured, ratio)


def _share(costs: RankCosts, atoms: float) -> float:
    ghosts = costs.ghosts(atoms)
    return ghosts / (atoms / costs.ranks + ghosts)
