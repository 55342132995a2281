"""The ``verify`` setting: every evaluation's model input built again from scratch
and compared with what the driver's caches gave the model.

Between calls the driver keeps a Verlet list (:class:`~mlipdrive.neighbors.VerletPairs`),
the candidate pairs and their offsets (:class:`~mlipdrive.neighbors.Candidates`),
the checked types (``fixed_composition``) and, in MPI domains, each rank's halo
and pairs (:class:`~mlipdrive.halo.DomainList`) and the broadcast types. With
``verify`` on, each evaluation is also built without them -- a vesin search with
exactly each requested cutoff, the types and positions as given; for a domain,
every image within the interaction range of its local atoms, and each atom local
in exactly one domain -- and the first difference stops the evaluation with a
:class:`VerifyError` before the model runs.

Pairs are compared as sets of (first, second, cell shift), their vectors to the
round-off of the model's dtype (:func:`tolerance`); a pair within that round-off
of the cutoff may be in the list or not.
"""

from typing import Optional

import numpy as np
import torch
import vesin

from .neighbors import half_list_keep

_FIX = (
    "a cache of the driver gave the model other input than a build from scratch; "
    "please report this with the structure and the settings (meanwhile skin=0 and "
    "fixed_composition=off rebuild everything at every step)"
)


class VerifyError(RuntimeError):
    """What the model was given differs from its input built from scratch."""


def current_evaluation(potential) -> str:
    """The evaluation in progress, as the messages name it ('evaluation 7')."""
    return f"evaluation {potential.evaluations + 1}"


def tolerance(dtype: torch.dtype, positions: np.ndarray, cutoff: float) -> float:
    """Length: how far a vector computed in ``dtype`` may be from the float64 one
    (a few roundings of the positions, the cell offsets and their sums)."""
    scale = float(np.abs(positions).max(initial=0.0)) + cutoff
    return 32.0 * torch.finfo(dtype).eps * max(scale, 1.0)


def _fail(where: str, difference: str):
    raise VerifyError(f"verify, {where}: {difference}; {_FIX}")


# ---------------------------------------------------------------------- one System


def check_model_input(potential, system, types, positions, cell, pbc, search_pbc,
                      pairs_local=None):
    """:class:`VerifyError` naming the first difference between ``system``, what
    ``potential`` is about to give its model, and the same input built from the
    arrays: types, positions, cell (zero along non-periodic axes), pbc, and each
    requested neighbour list against a fresh vesin search of ``positions`` that
    is periodic along ``search_pbc`` (the caller's, for caller-owned pairs),
    keeping only the pairs with one of the first ``pairs_local`` atoms if given
    (a short-range model's MPI domain)."""
    tol = tolerance(potential.dtype, positions, max(potential.cutoffs, default=0.0))
    difference = (
        _first_unequal("type of atom", system.types, types, 0.0)
        or _first_unequal("position of atom", system.positions, positions, tol)
        or _first_unequal("cell vector", system.cell, np.where(pbc[:, None], cell, 0.0), tol)
        or _first_unequal("periodicity of axis", system.pbc, pbc, 0.0)
        or _neighbor_lists_difference(
            potential, system, positions, cell, search_pbc, tol, pairs_local
        )
    )
    if difference is not None:
        _fail(current_evaluation(potential), difference)


def _neighbor_lists_difference(potential, system, positions, cell, periodic, tol, pairs_local):
    """The first difference between a requested list of ``system`` and one fresh
    vesin search (the largest cutoff and the round-off band; the pairs with one of
    the first ``pairs_local`` atoms if given), or None."""
    if not potential.requested_neighbor_lists:
        return None
    full = any(options.full_list for options in potential.requested_neighbor_lists)
    pairs, shifts, vectors = _fresh_pairs(
        positions, cell, periodic, max(potential.cutoffs) + 2.0 * tol, full
    )
    squared = np.einsum("ij,ij->i", vectors, vectors)
    unit = potential.units.length
    for index, (options, cutoff) in enumerate(
        zip(potential.requested_neighbor_lists, potential.cutoffs)
    ):
        # within round-off of the cutoff a pair may be in the list or not
        keep = squared < (cutoff + tol) ** 2
        if pairs_local is not None:
            keep &= pairs.min(axis=1) < pairs_local
        if full and not options.full_list:
            keep &= half_list_keep(pairs[:, 0], pairs[:, 1], *shifts.T, where=np.where)
        fresh = np.empty((int(keep.sum()), 5), dtype=np.int64)
        fresh[:, :2], fresh[:, 2:] = pairs[keep], shifts[keep]
        block = system.get_neighbor_list(options)
        difference = _pairs_difference(
            _numpy(block.samples.values).astype(np.int64),
            _numpy(block.values).reshape(-1, 3).astype(np.float64),
            fresh, vectors[keep], squared[keep] < (cutoff - tol) ** 2, tol, unit,
        )
        if difference is not None:
            kind = "full" if options.full_list else "half"
            return f"neighbour list {index} ({kind}, cutoff {cutoff:g} {unit}): {difference}"
    return None


def _fresh_pairs(positions, cell, periodic, cutoff: float, full: bool):
    """(pairs, shifts, vectors) of a vesin search, a full list or the half list
    of :func:`~mlipdrive.neighbors.half_list_keep`."""
    search = vesin.NeighborList(cutoff=cutoff, full_list=full)
    pairs, shifts, vectors = search.compute(
        points=positions, box=np.where(periodic[:, None], cell, 0.0), periodic=periodic,
        quantities="PSD",
    )
    pairs, shifts = pairs.astype(np.int64), shifts.astype(np.int64)
    if not full:
        # vesin's half list holds either direction of a pair: keep the rule's
        flip = ~half_list_keep(pairs[:, 0], pairs[:, 1], *shifts.T, where=np.where)
        pairs[flip], shifts[flip], vectors[flip] = pairs[flip, ::-1], -shifts[flip], -vectors[flip]
    return pairs, shifts, vectors


def _pairs_difference(samples, vectors, fresh, fresh_vectors, required, tol, unit):
    """The first difference between the cached pairs (``samples`` (m, 5) and their
    ``vectors``) and the fresh ones (``required``: those that must be listed) as
    sets: a pair missing, a pair not in the fresh list, a pair twice, a vector
    off by more than ``tol``; or None."""
    keys, fresh_keys = _keys(samples, fresh)
    order, fresh_order = np.argsort(keys), np.argsort(fresh_keys)
    keys, fresh_keys = keys[order], fresh_keys[fresh_order]
    listed = np.empty(len(fresh_keys), dtype=bool)
    listed[fresh_order] = _search(keys, fresh_keys)[1]
    missing = np.flatnonzero(required & ~listed)
    if len(missing):
        i = missing[0]
        distance = float(np.linalg.norm(fresh_vectors[i]))
        return f"pair {_pair(fresh[i])} at {distance:.9g} {unit} is missing from the cached list"
    position, found = _search(fresh_keys, keys)
    if not found.all():
        i = order[np.argmin(found)]
        length = float(np.linalg.norm(vectors[i]))
        return (f"pair {_pair(samples[i])} (cached vector {vectors[i].tolist()}, "
                f"{length:.9g} {unit}) is not in a fresh list: beyond the cutoff, or "
                "the second direction of a pair in a half list")
    repeated = np.flatnonzero(keys[1:] == keys[:-1])
    if len(repeated):
        return f"pair {_pair(samples[order[repeated[0]]])} is listed twice"
    match = fresh_order[position]
    wrong = np.flatnonzero(np.abs(vectors[order] - fresh_vectors[match]).max(axis=1) > tol)
    if len(wrong):
        i, j = order[wrong[0]], match[wrong[0]]
        return (f"vector of pair {_pair(samples[i])}: cached {vectors[i].tolist()}, "
                f"fresh {fresh_vectors[j].tolist()}")
    return None


# ---------------------------------------------------------------------- MPI domains


def check_domain(domain, positions, cell, pbc, fresh_cell, fresh_pbc, interaction_range, where):
    """:class:`VerifyError` naming the first difference between a kept ``domain``
    (:class:`~mlipdrive.halo.Domain`) and one built now for its local atoms: its
    cell and pbc (``fresh_cell``, ``fresh_pbc``: a new decomposition's with the
    same grid), each entry's position (its atom's plus its shift), every image
    within ``interaction_range`` of a local atom present, and none twice."""
    tol = tolerance(torch.float64, positions, interaction_range)
    images = positions[domain.owners] + domain.shifts @ cell
    difference = (
        _first_unequal("cell vector", domain.cell, fresh_cell, tol)
        or _first_unequal("periodicity of axis", domain.pbc, fresh_pbc, 0.0)
        or _first_unequal("position of entry", domain.positions, images, tol)
        or _halo_difference(domain, positions, cell, pbc, interaction_range)
    )
    if difference is not None:
        _fail(where, f"this rank's domain: {difference}")


def _halo_difference(domain, positions, cell, pbc, interaction_range) -> Optional[str]:
    """An image within ``interaction_range`` of a local atom (a fresh vesin search
    of the whole structure) that the domain lacks, or an image it holds twice; or
    None. Images are (atom, shift) with the shift along the domain's periodic axes
    left out: the model sees those images through cell shifts."""
    local = domain.owners[: domain.n_local]
    first, owners, shifts = (np.zeros(0, np.int64), np.zeros(0, np.int64),
                             np.zeros((0, 3), np.int64))
    if domain.n_local and interaction_range > 0.0:
        search = vesin.NeighborList(cutoff=interaction_range, full_list=True)
        pairs, pair_shifts = search.compute(
            points=positions, box=np.where(pbc[:, None], cell, 0.0), periodic=pbc,
            quantities="PS",
        )
        entry = np.full(len(positions), -1)
        entry[local] = np.arange(domain.n_local)
        first = entry[pairs[:, 0].astype(np.int64)]
        near = first >= 0
        first = first[near]
        owners = pairs[near, 1].astype(np.int64)
        shifts = pair_shifts[near] + domain.shifts[first]
    free = ~np.asarray(domain.pbc, dtype=bool)
    held, needed = _keys(
        _image_rows(domain.owners, domain.shifts * free), _image_rows(owners, shifts * free)
    )
    order, needed_order = np.argsort(held), np.argsort(needed)
    repeated = np.flatnonzero(held[order][1:] == held[order][:-1])
    if len(repeated):
        twice = order[repeated[0]]
        return (f"atom {domain.owners[twice]} with cell shift {domain.shifts[twice].tolist()} "
                "is in it twice")
    found = _search(held[order], needed[needed_order])[1]
    if not found.all():
        i = needed_order[np.argmin(found)]
        return (f"atom {owners[i]} with cell shift {shifts[i].tolist()}, within "
                f"{interaction_range:g} of local atom {local[first[i]]}, is missing from its halo")
    return None


def check_partition(counts: np.ndarray, where: str):
    """:class:`VerifyError` unless every atom is a local atom of exactly one domain
    (``counts``: of how many domains each atom is a local atom)."""
    wrong = np.flatnonzero(np.rint(counts) != 1)
    if len(wrong):
        atom = wrong[0]
        _fail(where, f"atom {atom} is a local atom of {int(np.rint(counts[atom]))} "
              "domains, not of exactly one")


def check_kept_types(kept: np.ndarray, given: np.ndarray, where: str):
    """:class:`VerifyError` if the types this rank kept from an earlier broadcast
    differ from the types given for this evaluation."""
    difference = _first_unequal("type of atom", kept, given, 0.0)
    if difference is not None:
        _fail(where, f"the types this rank kept: {difference}")


# ---------------------------------------------------------------------- helpers


def _numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _first_unequal(what: str, cached, fresh, tol: float) -> Optional[str]:
    """'type of atom 5: cached 13, fresh 29' for the first row of ``cached`` that
    differs from ``fresh`` by more than ``tol``; None if none does."""
    cached, fresh = _numpy(cached), _numpy(fresh)
    if cached.shape != fresh.shape:
        return f"{what}s: shape {cached.shape} cached, {fresh.shape} fresh"
    wrong = np.abs(cached.astype(np.float64) - fresh.astype(np.float64)) > tol
    rows = np.flatnonzero(wrong.any(axis=tuple(range(1, wrong.ndim))))
    if not len(rows):
        return None
    i = rows[0]
    return f"{what} {i}: cached {cached[i].tolist()}, fresh {fresh[i].tolist()}"


def _keys(*samples):
    """One int64 per (first, second, shift a, b, c) row, equal for equal rows
    across all of ``samples`` ((m, 5) int64 arrays)."""
    if not sum(len(rows) for rows in samples):
        return [np.zeros(0, dtype=np.int64) for _ in samples]
    atoms = max(int(rows[:, :2].max(initial=0)) for rows in samples) + 1
    low = min(int(rows[:, 2:].min(initial=0)) for rows in samples)
    base = max(int(rows[:, 2:].max(initial=0)) for rows in samples) - low + 1
    # fits in int64 while atoms² · base³ < 2⁶³: 3e7 atoms with shifts up to ±10
    keys = []
    for rows in samples:
        key = (rows[:, 0] * atoms + rows[:, 1]) * base + (rows[:, 2] - low)
        keys.append((key * base + (rows[:, 3] - low)) * base + (rows[:, 4] - low))
    return keys


def _search(table: np.ndarray, queries: np.ndarray):
    """(for each of the sorted ``queries``, its position in the sorted ``table``
    (clipped), whether it is there): sorted queries make the binary searches
    walk memory in order."""
    if not len(table):
        return np.zeros(len(queries), dtype=np.int64), np.zeros(len(queries), dtype=bool)
    position = np.minimum(np.searchsorted(table, queries), len(table) - 1)
    return position, table[position] == queries


def _image_rows(owners, shifts) -> np.ndarray:
    """(m, 5) rows (atom, 0, shift) for :func:`_keys`."""
    owners = np.asarray(owners, dtype=np.int64)
    return np.column_stack([owners, np.zeros_like(owners), np.asarray(shifts, np.int64)])


def _pair(row) -> str:
    return f"({row[0]}, {row[1]}, shift [{row[2]}, {row[3]}, {row[4]}])"
