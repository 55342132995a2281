"""Benchmark systems: a unit cell replicated to about the requested atom count.

Every engine starts from the same file: positions, cell and Maxwell–Boltzmann
velocities (seeded, zero total momentum) written once per (model, size) as
extended XYZ, plus a LAMMPS data file with the same atoms and velocities.
i-PI draws its own thermal velocities at the same temperature (its input cannot
take velocities from an ASE file).
"""

import dataclasses
import itertools
import math
import pathlib
from typing import Optional, Sequence, Tuple

import numpy as np

# unit cells (conventional fcc, 4 atoms): lattice constants in Å
ARGON_LATTICE = 5.26  # LJ argon, solid at 80 K
CUAL_LATTICE = 0.5 * 3.61 + 0.5 * 4.05  # Vegard's law, as the MACE training set


@dataclasses.dataclass(frozen=True)
class SystemKind:
    """How to build the benchmark system of one model."""

    name: str
    #: ASE structure file of the unit cell to replicate; None: fcc of `elements`
    unit_cell: Optional[str] = None
    #: elements of the fcc lattice, assigned at random in equal shares
    elements: Tuple[str, ...] = ()
    lattice: float = 0.0
    temperature_k: float = 300.0


ARGON = SystemKind("argon", elements=("Ar",), lattice=ARGON_LATTICE, temperature_k=80.0)
CUAL = SystemKind("CuAl", elements=("Cu", "Al"), lattice=CUAL_LATTICE, temperature_k=300.0)


def kind_for_types(atomic_types: Sequence[int], unit_cell: Optional[str] = None) -> SystemKind:
    """A system for a model that knows ``atomic_types`` (atomic numbers).

    Argon for a model that knows Ar, CuAl for one that knows Cu and Al, else an
    fcc lattice of the model's first type with a nearest-neighbour distance of
    twice its covalent radius (give ``unit_cell`` for anything better).
    """
    import ase.data

    if unit_cell is not None:
        return SystemKind(pathlib.Path(unit_cell).stem, unit_cell=str(unit_cell))
    types = set(atomic_types)
    if 18 in types:
        return ARGON
    if {13, 29} <= types:
        return CUAL
    if not types:
        raise ValueError("the model declares no atomic types; give --structure FILE")
    first = sorted(types)[0]
    symbol = ase.data.chemical_symbols[first]
    lattice = 2.0 * ase.data.covalent_radii[first] * math.sqrt(2.0)
    return SystemKind(f"fcc-{symbol}", elements=(symbol,), lattice=lattice)


def unit_cell(kind: SystemKind):
    """The ASE Atoms of the unit cell to replicate."""
    import ase.build

    from mlipdrive._structure import read_structure

    if kind.unit_cell is not None:
        return read_structure(kind.unit_cell)
    return ase.build.bulk(kind.elements[0], "fcc", a=kind.lattice, cubic=True)


def choose_repeats(cell: np.ndarray, atoms_per_cell: int, target: int) -> Tuple[int, int, int]:
    """Repeats along the three cell vectors: about ``target`` atoms in a box
    as close to cubic as the cell allows (it matters for MPI domains)."""
    if target < 1:
        raise ValueError(f"the system size must be at least 1 atom, got {target}")
    lengths = np.linalg.norm(np.asarray(cell), axis=1)
    cells_wanted = target / atoms_per_cell
    edge = cells_wanted ** (1.0 / 3.0)
    best, best_score = (1, 1, 1), math.inf
    # candidates around the cube root, scaled by the cell vector lengths
    ranges = []
    for length in lengths:
        ideal = edge * lengths.mean() / length
        low = max(1, int(ideal / 2))
        ranges.append(range(low, max(low + 1, int(math.ceil(ideal * 2))) + 1))
    for repeats in itertools.product(*ranges):
        n_atoms = atoms_per_cell * math.prod(repeats)
        box = lengths * np.array(repeats)
        score = abs(math.log(n_atoms / target)) + 0.25 * math.log(box.max() / box.min())
        if score < best_score - 1e-12:
            best, best_score = repeats, score
    return best


def build(kind: SystemKind, target_atoms: int, *, seed: int = 0, rattle: float = 0.03):
    """The system of about ``target_atoms`` atoms, with thermal velocities."""
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    cell = unit_cell(kind)
    repeats = choose_repeats(cell.cell.array, len(cell), target_atoms)
    atoms = cell.repeat(repeats)
    rng = np.random.default_rng(seed)
    if kind.unit_cell is None and len(kind.elements) > 1:
        # a random alloy with equal shares of each element
        symbols = [kind.elements[i % len(kind.elements)] for i in range(len(atoms))]
        atoms.set_chemical_symbols([symbols[i] for i in rng.permutation(len(atoms))])
    atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
    atoms.wrap()
    thermalize_momenta(atoms, temperature_K=kind.temperature_k, rng=rng)
    Stationary(atoms)
    atoms.info["repeats"] = " ".join(map(str, repeats))
    return atoms


def write(atoms, directory: pathlib.Path, specorder: Sequence[str]):
    """Write ``system.extxyz`` (with momenta) and ``system.data`` (LAMMPS, metal
    units, with masses and velocities; atom types in ``specorder``)."""
    import ase.io

    directory.mkdir(parents=True, exist_ok=True)
    ase.io.write(directory / "system.extxyz", atoms, format="extxyz")
    ase.io.write(
        directory / "system.data",
        atoms,
        format="lammps-data",
        specorder=list(specorder),
        masses=True,
        velocities=True,
        units="metal",
        atom_style="atomic",
    )
    return directory / "system.extxyz"


def species(atoms, atomic_types: Sequence[int]) -> list:
    """Element symbols of the LAMMPS atom types: the system's elements in the
    model's type order."""
    import ase.data

    present = set(atoms.numbers.tolist())
    return [ase.data.chemical_symbols[t] for t in atomic_types if t in present]
