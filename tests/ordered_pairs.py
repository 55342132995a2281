"""A model evaluated with its neighbour pairs (and atoms) handed over in a chosen order.

Shared by ``tests/test_pair_order.py`` and ``tools/parity/pair_order.py``. The
System and its neighbour lists are built here with metatomic's own types and
vesin, not by mlipdrive: each requested list is vesin's pairs for that request
(cutoff, full or half), whose rows are then permuted, every pair keeping its
samples (first atom, second atom, cell shift) and its vector together. The
vectors are ``r_j - r_i + S @ cell`` in the model's dtype, computed per pair from
the positions (so each pair's vector is the same bits in every order) and
differentiated by autograd for the forces.

An atom order is a permutation of the System's atoms (positions and types),
with the pairs renumbered; results come back in the original atom order.
"""

import pathlib
import sys
from typing import Optional

import numpy as np
import torch
import vesin
from metatensor.torch import Labels, TensorBlock
from metatomic.torch import AtomisticModel, ModelEvaluationOptions, ModelOutput, System

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}
SAMPLE_NAMES = ["first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"]

# Lennard-Jones for the CuAl frame: copper's parameters (Halicioglu and Pound,
# 1975) for Al and Cu alike, so that the frame's 2.65 Å neighbours sit near the
# minimum (2^(1/6) sigma = 2.62 Å); the tests' cutoff
LJ_CUAL = {"sigma": 2.338, "epsilon": 0.409, "cutoff": 8.5}


def export_cual_lj(path) -> pathlib.Path:
    """``models/lj/export_lj.py``'s model (shifted, half list) with :data:`LJ_CUAL`
    for Al and Cu, written to ``path``."""
    lj = pathlib.Path(__file__).resolve().parents[1] / "models" / "lj"
    if str(lj) not in sys.path:
        sys.path.insert(0, str(lj))
    from export_lj import export_lj

    export_lj(path, **LJ_CUAL, shifted=True, elements=("Al", "Cu"))
    return pathlib.Path(path)


class OrderedEvaluation:
    """One model on one periodic structure, evaluated with pairs in any order.

    :param model: the loaded model (already converted to the dtype to run in)
    :param atoms: an ``ase.Atoms``, periodic along all three axes
    """

    def __init__(self, model: AtomisticModel, atoms):
        self.model = model
        capabilities = model.capabilities()
        self.dtype = TORCH_DTYPES[capabilities.dtype]
        self.length_unit = capabilities.length_unit
        self.positions = np.asarray(atoms.positions, dtype=np.float64)
        self.cell = np.asarray(atoms.cell.array, dtype=np.float64)
        self.types = np.asarray(atoms.numbers, dtype=np.int32)
        self.requests = list(model.requested_neighbor_lists())
        # vesin's pairs for every request, in vesin's order (the reference order)
        self.pairs = []
        for options in self.requests:
            search = vesin.NeighborList(
                cutoff=options.engine_cutoff("angstrom"), full_list=options.full_list
            )
            i, j, shifts = search.compute(
                points=self.positions, box=self.cell, periodic=True, quantities="ijS"
            )
            self.pairs.append(
                np.column_stack([i, j, shifts]).astype(np.int32)
            )

    def n_pairs(self):
        """Number of pairs of each request."""
        return [len(p) for p in self.pairs]

    def evaluate(self, pair_orders=None, atom_order: Optional[np.ndarray] = None):
        """(energy, per-atom energies (n,), forces (n, 3)) as float64 numpy, in
        the original atom order.

        :param pair_orders: one row permutation per request (None: vesin's order)
        :param atom_order: ``atom_order[k]`` is the original index of System atom
            ``k`` (None: the original order)
        """
        n_atoms = len(self.types)
        order = np.arange(n_atoms) if atom_order is None else np.asarray(atom_order)
        # new index of each original atom
        rank = np.empty(n_atoms, dtype=np.int32)
        rank[order] = np.arange(n_atoms, dtype=np.int32)

        positions = torch.tensor(self.positions[order], dtype=self.dtype, requires_grad=True)
        cell = torch.tensor(self.cell, dtype=self.dtype)
        system = System(
            torch.from_numpy(self.types[order].copy()),
            positions,
            cell,
            torch.tensor([True, True, True]),
        )
        for k, (options, pairs) in enumerate(zip(self.requests, self.pairs)):
            rows = pairs if pair_orders is None else pairs[np.asarray(pair_orders[k])]
            samples = rows.copy()
            samples[:, 0] = rank[rows[:, 0]]
            samples[:, 1] = rank[rows[:, 1]]
            samples_t = torch.from_numpy(samples)
            first = samples_t[:, 0].to(torch.int64)
            second = samples_t[:, 1].to(torch.int64)
            shifts = samples_t[:, 2:].to(self.dtype)
            vectors = positions[second] - positions[first] + shifts @ cell
            block = TensorBlock(
                values=vectors.reshape(-1, 3, 1),
                samples=Labels(SAMPLE_NAMES, samples_t, assume_unique=True),
                components=[Labels("xyz", torch.tensor([[0], [1], [2]]))],
                properties=Labels("distance", torch.tensor([[0]])),
            )
            system.add_neighbor_list(options, block)

        options = ModelEvaluationOptions(
            length_unit="angstrom",
            outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        )
        outputs = self.model([system], options, check_consistency=False)
        block = outputs["energy"].block()
        energies_t = block.values.reshape(-1)
        (gradient,) = torch.autograd.grad(energies_t.sum(), positions)
        atoms_of_samples = block.samples.column("atom").to(torch.int64).numpy()
        energies = np.zeros(n_atoms)
        energies[order[atoms_of_samples]] = energies_t.detach().to(torch.float64).numpy()
        forces = np.zeros((n_atoms, 3))
        forces[order] = -gradient.to(torch.float64).numpy()
        # the total as the model's dtype sums it, like an engine that asks for it
        energy = float(energies_t.detach().sum())
        return energy, energies, forces


def random_pair_orders(evaluation: OrderedEvaluation, rng: np.random.Generator):
    """One random row permutation per request."""
    return [rng.permutation(n) for n in evaluation.n_pairs()]


def grouped_pair_orders(evaluation: OrderedEvaluation, rng: np.random.Generator):
    """Per request: rows grouped by first atom (ascending, as LAMMPS's lists and
    vesin's are), the order within each group shuffled."""
    orders = []
    for pairs in evaluation.pairs:
        shuffled = rng.permutation(len(pairs))
        orders.append(shuffled[np.argsort(pairs[shuffled, 0], kind="stable")])
    return orders


def spread(evaluation: OrderedEvaluation, orders: int, seed: int = 0, kind: str = "random"):
    """Largest change from vesin's order over ``orders`` other orders.

    ``kind``: 'random' (pair rows shuffled), 'grouped' (shuffled within each
    first atom) or 'atoms' (a random permutation of the atoms, pairs renumbered,
    in vesin's order). Returns a dict: 'energy/atom' (eV, |dE| / n), 'energies'
    (eV, largest per-atom energy change), 'forces' (eV/Å), and the scales of the
    reference's values: 'max |E_i|', 'max |F|'.
    """
    rng = np.random.default_rng(seed)
    energy0, energies0, forces0 = evaluation.evaluate()
    n_atoms = len(energies0)
    worst = {"energy/atom": 0.0, "energies": 0.0, "forces": 0.0}
    for _ in range(orders):
        if kind == "atoms":
            result = evaluation.evaluate(atom_order=rng.permutation(n_atoms))
        elif kind == "grouped":
            result = evaluation.evaluate(pair_orders=grouped_pair_orders(evaluation, rng))
        elif kind == "random":
            result = evaluation.evaluate(pair_orders=random_pair_orders(evaluation, rng))
        else:
            raise ValueError(f"unknown kind of order '{kind}'; use random, grouped or atoms")
        energy, energies, forces = result
        worst["energy/atom"] = max(worst["energy/atom"], abs(energy - energy0) / n_atoms)
        worst["energies"] = max(worst["energies"], float(np.abs(energies - energies0).max()))
        worst["forces"] = max(worst["forces"], float(np.abs(forces - forces0).max()))
    worst["max |E_i|"] = float(np.abs(energies0).max())
    worst["max |F|"] = float(np.abs(forces0).max())
    return worst
