"""CPU time of each rank's model evaluation for LJ argon, with and without the
pruning of ghost-ghost pairs: a figure that a shared machine's load distorts
much less than wall-clock steps (process CPU time, one torch thread).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/results/ranks_short_range_ipi/cpu_per_rank.py [ATOMS]

Evaluates the whole structure (one rank) and each of the two domains of a
2-rank decomposition in this process (the ranks' work, one after the other),
with the pairs of ``DomainEvaluator`` pruned and not; prints CPU ms per
evaluation (least of 7 after 2 warm-ups) and the pairs each got.
"""

import pathlib
import sys
import tempfile
import time

import ase.build
import numpy as np
import torch

import mlipdrive
from mlipdrive.halo import Decomposition, DomainEvaluator

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "models" / "lj"))
from export_lj import export_lj  # noqa: E402

torch.set_num_threads(1)


def cpu_ms(function, repeats=7, warmup=2) -> float:
    """Least CPU time of ``repeats`` calls: the cost without the other
    processes' interference (cache, frequency) that a shared machine adds."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return 1e3 * min(times)


def main(n_atoms: int):
    path = pathlib.Path(tempfile.mkdtemp()) / "lj.pt"
    export_lj(path, sigma=3.405, epsilon=0.0104, cutoff=8.5, shifted=True)
    potential = mlipdrive.load(path, settings="turbo")
    repeat = round((n_atoms / 4) ** (1 / 3))
    atoms = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat(repeat)
    atoms.positions += np.random.default_rng(0).normal(scale=0.03, size=atoms.positions.shape)
    positions, types, cell = atoms.positions, atoms.numbers, atoms.cell.array
    whole = cpu_ms(lambda: potential.compute(positions, types, cell, True))
    print(f"{len(atoms)} atoms, LJ turbo, 1 rank: {whole:.0f} ms CPU per evaluation")
    decomposition = Decomposition(positions, cell, [True] * 3, 2, potential.interaction_range)
    for pruned in (False, True):
        evaluator = DomainEvaluator(potential)
        evaluator.pruned = pruned
        for rank in range(2):
            domain = decomposition.domain(rank)
            pairs = evaluator.pairs(domain)
            ms = cpu_ms(lambda: evaluator.evaluate(domain, types, pairs=pairs))
            print(f"2 ranks, pruned={pruned}, rank {rank}: {domain.n_local} local + "
                  f"{domain.n_ghosts} ghosts, {len(pairs[0])} pairs, {ms:.0f} ms CPU "
                  f"({whole / ms:.2f}x less than 1 rank)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 32000)
