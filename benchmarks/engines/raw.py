"""The floor: the model's forward and backward pass, nothing else.

The System (positions, cell, neighbour lists with their distance vectors) is
built once, with the model's settings applied (dtype, graph executor, ...) by
:func:`mlipdrive.load`. Each step then runs only the model and
``autograd.grad`` of the energy with respect to the positions (the forces); the
graph from positions to distance vectors is kept between steps
(``retain_graph``). No neighbour search, no integrator, no copies in or out:
no engine can be faster than this on the same atoms, settings and threads.
"""

import pathlib

from ..matrix import Row
from ..measure import PhaseTimer, per_step_ms
from . import _common


def run(row: Row, workdir: pathlib.Path) -> dict:
    import ase.io
    import torch
    from metatomic.torch import ModelEvaluationOptions

    potential = _common.load_potential(row)
    atoms = ase.io.read(row.structure, parallel=False)
    system, positions = _system(potential, atoms)
    evaluation = ModelEvaluationOptions(
        length_unit="angstrom",
        outputs={"energy": potential.energy_output()},
    )
    model = potential.model
    check = potential.settings.check_consistency
    timer = PhaseTimer()
    energies = []

    def step(_index):
        with timer("forward"):
            energy = model([system], evaluation, check)["energy"].block().values.sum()
            _common.synchronize(row.device)
        with timer("backward"):
            (gradient,) = torch.autograd.grad(energy, [positions], retain_graph=True)
            _common.synchronize(row.device)
        if not energies:
            energies.append(float(energy.detach()))
        del gradient

    measured = _common.timed_blocks(row, _common.step_loop(step), on_warm=timer.reset)
    return {
        **measured,
        "split_ms": per_step_ms(timer.seconds, measured["measured_steps"]),
        "energy0_per_atom": energies[0] / len(atoms),
        "gpu_memory_mb": _common.gpu_memory_mb(row.device),
        "notes": [],
    }


def _system(potential, atoms):
    """The model's System of ``atoms`` with every neighbour list it asks for,
    and its positions (a leaf that requires grad)."""
    import numpy as np
    import torch
    import vesin
    from metatomic.torch import System

    from mlipdrive.neighbors import Candidates, half_list_mask, neighbor_block

    device, dtype = potential.device, potential.dtype
    positions = torch.tensor(atoms.positions, dtype=dtype, device=device, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, dtype=dtype, device=device)
    system = System(
        torch.tensor(atoms.numbers, dtype=torch.int32, device=device),
        positions,
        cell,
        torch.tensor(atoms.pbc, device=device),
    )
    search = vesin.NeighborList(cutoff=max(potential.cutoffs), full_list=True)
    pairs, shifts = search.compute(
        points=atoms.positions, box=atoms.cell.array, periodic=atoms.pbc, quantities="PS"
    )
    pairs = torch.as_tensor(pairs.astype(np.int32)).to(device)
    shifts = torch.as_tensor(shifts.astype(np.int32)).to(device)
    for options, cutoff in zip(potential.requested_neighbor_lists, potential.cutoffs):
        request_pairs, request_shifts = pairs, shifts
        if not options.full_list:
            keep = half_list_mask(pairs, shifts)
            request_pairs, request_shifts = pairs[keep], shifts[keep]
        candidates = Candidates(request_pairs, request_shifts)
        block = neighbor_block(options, cutoff, positions, cell, candidates)
        system.add_neighbor_list(options, block)
    return system, positions
