"""Domain decomposition, in process: the ghost path, the domains, the grid.

The MPI runs themselves are in test_decomposition_mpi.py. Here every domain of a
grid is evaluated in turn in one process, which checks the geometry (locals,
ghost halos, image shells, triclinic and non-periodic frames) exactly as the
ranks would use it, in a fraction of the time.
"""

import pathlib
import sys

import numpy as np
import pytest

import mlipdrive
from mlipdrive.halo import Decomposition, DomainEvaluator, DomainList, choose_grid

sys.path.insert(0, str(pathlib.Path(__file__).parent / "mpi_scripts"))
import decomposition_cases as cases  # noqa: E402

_POTENTIALS = {}


def _potential(path, extensions=None, **settings):
    key = (str(path), str(extensions), tuple(sorted(settings.items())))
    if key not in _POTENTIALS:
        _POTENTIALS[key] = mlipdrive.load(
            path, settings=settings or "default", extensions=extensions
        )
    return _POTENTIALS[key]


@pytest.fixture(params=["lj_model", "lj_model_full"])
def lj(request):
    return _potential(request.getfixturevalue(request.param)), cases.LJ_SPECIES


@pytest.fixture
def family(model_family):
    """A shipped model family: its potential, the Cu/Al cases and the family row."""
    potential = _potential(model_family.path, model_family.extensions)
    return potential, cases.CUAL_SPECIES, model_family


def assert_close(results, reference, family=None, what=""):
    """Within SAME_MODEL for the LJ models, the family's tolerances otherwise."""
    deviations = cases.errors(results, reference, len(reference.forces))
    if family is None:
        limits = cases.lj_limits()
    else:
        limits = cases.family_limits(family, deviations.get("largest_energy", 0.0))
        print(f"DECOMPOSITION {family.name} {what}: " + " ".join(
            f"{k}={deviations[k]:.2e}" for k in limits if k in deviations))
    over = cases.over_limits(deviations, limits)
    assert not over, f"(deviation, limit) {over}; all: {deviations}"


def summed_domains(potential, structure, n_domains, grid=None, explicit_images=False,
                   halo=None):
    """All domains of one decomposition evaluated one after the other, summed;
    ``halo``: the ghost halo width (default: the model's interaction range)."""
    positions, types, cell, pbc = structure
    decomposition = Decomposition(
        positions,
        cell,
        pbc,
        n_domains,
        potential.interaction_range if halo is None else halo,
        grid=grid,
        explicit_images=explicit_images,
    )
    evaluator = DomainEvaluator(potential)
    total = mlipdrive.Results(
        energy=0.0, forces=0.0, virial=0.0, energies=0.0
    )
    for rank in range(n_domains):
        share = evaluator.evaluate(decomposition.domain(rank), types, per_atom=True)
        total.energy += share.energy
        total.forces = total.forces + share.forces
        total.virial = total.virial + share.virial
        total.energies = total.energies + share.energies
    volume = abs(np.linalg.det(cell))
    if np.all(pbc) and volume > 0:
        total.stress = -total.virial / volume
    return total


# ---------------------------------------------------------------- the ghost path


# positions and cell on a grid of 2^-12 Å: a ghost image x + S @ cell is then the
# same number in float32 as in float64, so that the two layouts of a float32
# model differ by the order of its sums, not by the rounding of ghost
# coordinates (which is of order eps * |x| * |F| and depends on the CPU's kernels)
GRID = 2.0**-12


def _check_one_domain(potential, species, name, family=None):
    positions, types, cell, pbc = cases.structures(species)[name]
    positions, cell = np.round(positions / GRID) * GRID, np.round(cell / GRID) * GRID
    reference = potential.compute(positions, types, cell, pbc, per_atom=True)
    halo = potential.interaction_range if family is None else family.halo
    domain = Decomposition(positions, cell, pbc, 1, halo, explicit_images=True).domain(0)
    assert domain.n_local == len(types)
    assert domain.n_ghosts > 0
    # the whole box as local atoms, and every image within the range as ghosts
    results = potential.compute(
        domain.positions,
        types[domain.owners],
        np.zeros((3, 3)),
        [False, False, False],
        per_atom=True,
        selected_atoms=np.arange(domain.n_local),
        pairs=DomainEvaluator(potential).pairs(domain),
    )
    forces = np.zeros_like(reference.forces)
    np.add.at(forces, domain.owners, results.forces)
    results.forces = forces
    results.stress = -results.virial / abs(np.linalg.det(cell))
    assert_close(results, reference, family, f"one domain {name}")


@pytest.mark.parametrize("name", ["triclinic", "tiny"])
def test_periodic_box_equals_locals_plus_ghost_images(lj, name):
    _check_one_domain(*lj, name)


def test_periodic_box_equals_locals_plus_ghost_images_family(family):
    # hundreds of ghosts for two local atoms: MACE's and PET's range is 9 Å
    # (2 × 4.5 Å), SOAP-BPNN's 4.5 Å
    potential, species, model_family = family
    _check_one_domain(potential, species, "tiny", model_family)


# ---------------------------------------------------------------- all domains


@pytest.mark.parametrize("explicit_images", [False, True])
@pytest.mark.parametrize("name", ["triclinic", "tiny", "clustered", "cluster", "slab"])
@pytest.mark.parametrize("grid", [(1, 1, 1), (2, 1, 1), (1, 3, 1), (2, 1, 2), (1, 2, 2)])
def test_domains_sum_to_the_whole(lj, name, grid, explicit_images):
    potential, species = lj
    structure = cases.structures(species)[name]
    positions, types, cell, pbc = structure
    reference = potential.compute(positions, types, cell, pbc, per_atom=True)
    total = summed_domains(
        potential, structure, int(np.prod(grid)), grid, explicit_images=explicit_images
    )
    assert_close(total, reference)


@pytest.mark.parametrize("name", ["triclinic", "clustered", "slab"])
def test_domains_sum_to_the_whole_family(family, name):
    """Four domains against the serial evaluation. The halo is the family's:
    PET's outputs reach a little beyond its declared range (model_families.py)."""
    potential, species, model_family = family
    structure = cases.structures(species)[name]
    positions, types, cell, pbc = structure
    reference = potential.compute(positions, types, cell, pbc, per_atom=True)
    total = summed_domains(potential, structure, 4, halo=model_family.halo)
    assert_close(total, reference, model_family, f"4 domains {name}")


@pytest.mark.parametrize("name", ["triclinic", "tiny", "clustered", "cluster", "slab"])
@pytest.mark.parametrize("n_domains", [1, 2, 3, 4, 7, 12])
def test_every_atom_is_local_once(name, n_domains):
    positions, types, cell, pbc = cases.structures(cases.LJ_SPECIES)[name]
    decomposition = Decomposition(positions, cell, pbc, n_domains, 8.5)
    domains = [decomposition.domain(d) for d in range(n_domains)]
    owners = np.concatenate([domain.owners[: domain.n_local] for domain in domains])
    assert np.array_equal(np.sort(owners), np.arange(len(types)))


def test_empty_domains_contribute_nothing(lj):
    potential, species = lj
    structure = cases.structures(species)["clustered"]
    positions, types, cell, pbc = structure
    decomposition = Decomposition(positions, cell, pbc, 4, potential.interaction_range)
    assert decomposition.grid == (4, 1, 1)
    empty = [d for d in range(4) if decomposition.domain(d).n_local == 0]
    assert empty, "the clustered case should leave some domains empty"
    share = DomainEvaluator(potential).evaluate(decomposition.domain(empty[0]), types)
    assert share.energy == 0.0 and not share.forces.any() and not share.virial.any()


@pytest.mark.parametrize("name", ["triclinic", "clustered", "slab"])
def test_domain_lists_are_reused_within_the_skin(lj, name):
    """Small moves keep each domain's atoms and pairs; a move of more than half
    the skin rebuilds them; every step equals a fresh serial evaluation."""
    potential, species = lj
    positions, types, cell, pbc = cases.structures(species)[name]
    skin = 1.0
    lists = [DomainList(potential, 3, rank, skin=skin) for rank in range(3)]
    rng = np.random.default_rng(0)
    for step in range(5):
        positions = positions + rng.normal(scale=0.03, size=positions.shape)
        if step == 3:
            positions[5] += [0.8 * skin, 0.0, 0.0]
        reference = potential.compute(positions, types, cell, pbc, per_atom=True)
        total = mlipdrive.Results(energy=0.0, forces=0.0, virial=0.0, energies=0.0)
        for domains in lists:
            domain, pairs = domains.update(positions, cell, pbc)
            share = domains.evaluator.evaluate(domain, types, per_atom=True, pairs=pairs)
            total.energy += share.energy
            total.forces = total.forces + share.forces
            total.virial = total.virial + share.virial
            total.energies = total.energies + share.energies
        if np.all(pbc):
            total.stress = -total.virial / abs(np.linalg.det(cell))
        assert_close(total, reference)
    assert [domains.rebuilds for domains in lists] == [2, 2, 2]


# ---------------------------------------------------------------- grid and frame


@pytest.mark.parametrize(
    "n_domains, lengths, expected",
    [
        (1, (10, 10, 10), (1, 1, 1)),
        (2, (10, 10, 10), (2, 1, 1)),  # a cube: ties go to the first axis
        (2, (10, 30, 10), (1, 2, 1)),  # the longest direction is cut
        (4, (60, 10, 10), (4, 1, 1)),
        (8, (20, 20, 20), (8, 1, 1)),  # domains thinner than the range: slabs
        (8, (200, 200, 200), (4, 2, 1)),  # large domains: more axes cut
        (6, (400, 200, 100), (6, 1, 1)),
        (6, (300, 300, 300), (3, 2, 1)),
        (4, (30, 30, 0), (4, 1, 1)),  # a flat (non-periodic) extent is not cut
        (4, (0, 300, 300), (1, 4, 1)),
        (5, (10, 10, 10), (5, 1, 1)),  # a prime
    ],
)
def test_choose_grid(n_domains, lengths, expected):
    assert choose_grid(n_domains, lengths, 5.0) == expected


def test_choose_grid_with_explicit_images():
    # with ghosts along every periodic axis, a cube is cut into cubes again
    assert choose_grid(8, (20, 20, 20), 5.0, halo_when_uncut=(True,) * 3) == (2, 2, 2)


def test_infinite_range_is_refused():
    with pytest.raises(ValueError, match="infinite range"):
        Decomposition(np.zeros((1, 3)), np.eye(3), [True] * 3, 2, np.inf)


def test_flat_cell_is_refused():
    cell = np.array([[5.0, 0, 0], [10.0, 0, 0], [0, 0, 5.0]])
    with pytest.raises(ValueError, match="linearly dependent"):
        Decomposition(np.zeros((1, 3)), cell, [True] * 3, 2, 3.0)


# ---------------------------------------------------------------- the MPI class on one rank


@pytest.mark.parametrize("settings", [{}, {"fixed_composition": True}])
def test_distributed_potential_on_one_rank(lj_model, settings):
    """The whole class (broadcast buffers, reduction, result layout) on
    COMM_SELF with the ghost path forced; fixed_composition must not trip over
    the domains' atoms changing between calls."""
    from mpi4py import MPI

    from mlipdrive.decomposition import DistributedPotential

    potential = _potential(lj_model, **settings)
    dp = DistributedPotential(potential, MPI.COMM_SELF, decompose_serial=True)
    structures = cases.structures(cases.LJ_SPECIES)
    for name in ("triclinic", "clustered"):
        positions, types, cell, pbc = structures[name]
        reference = _potential(lj_model).compute(positions, types, cell, pbc, per_atom=True)
        assert_close(dp.compute(positions, types, cell, pbc, per_atom=True), reference)
    with pytest.raises(FloatingPointError, match="MPI rank 0: the model returned"):
        positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        dp.compute(positions, [18, 18], np.eye(3) * 20, True)
    with pytest.raises(mlipdrive.InvalidInput, match=r"atomic types \[1\]"):
        dp.compute(positions + [[0, 0, 0], [3, 0, 0]], [18, 1], np.eye(3) * 20, True)
    dp.close()
    with pytest.raises(RuntimeError, match="closed"):
        dp.compute(positions, [18, 18], np.eye(3) * 20, True)
