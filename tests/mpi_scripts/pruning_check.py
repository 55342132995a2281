"""The MPI decomposition with and without pruning against metatomic's ASE calculator.

    mpirun -np N python pruning_check.py OUT.json KIND:PATH[:EXTENSIONS] ...

``lj`` models run the Ar cases of decomposition_cases, any other KIND the Cu/Al
cases. For each model, twice (``verify`` off, then on): rank 0 evaluates every
case and a short trajectory (the domains reused within the Verlet skin) with
``DistributedPotential`` (the workers serve) and with
``metatomic_ase.MetatomicCalculator`` (an independent implementation), and
writes the largest deviations to OUT.json, with metatomic_ase's own round-off of
the energy (:func:`reference_noise`) and what rank 0's domain gave the model: whether it was pruned, the pairs given, and, from a fresh search of that
domain, all its pairs, those with a local atom, and the ghosts in no such pair.
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import ase  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from metatomic_ase import MetatomicCalculator  # noqa: E402
from mpi4py import MPI  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import decomposition_cases as cases  # noqa: E402

import mlipdrive  # noqa: E402
from mlipdrive.decomposition import DistributedPotential  # noqa: E402
from mlipdrive.halo import DomainEvaluator  # noqa: E402

torch.set_num_threads(1)


def deviations(results, atoms, per_atom):
    """Largest absolute deviations from metatomic_ase: energy per atom, forces, stress
    (periodic structures), per-atom energies (models that give them)."""
    out = {
        "energy/atom": abs(results.energy - atoms.get_potential_energy()) / len(atoms),
        "forces": float(np.abs(results.forces - atoms.get_forces()).max(initial=0.0)),
    }
    if atoms.pbc.all():
        out["stress"] = float(np.abs(results.stress - atoms.get_stress(voigt=False)).max())
    if per_atom:
        out["energies"] = float(np.abs(results.energies - atoms.get_potential_energies()).max())
    return out


def reference_noise(atoms, calculator) -> float:
    """metatomic_ase's own round-off of the energy per atom: the largest change
    from evaluating the same structure with its atoms in reversed order and,
    if periodic, as a 2x1x1 supercell (GAP's cancelling weights make it large)."""
    energy = atoms.get_potential_energy()
    variants = [(atoms[::-1], 1)]
    if atoms.pbc.all():
        variants.append((atoms.repeat((2, 1, 1)), 2))
    noise = 0.0
    for other, copies in variants:
        other.calc = calculator
        noise = max(noise, abs(other.get_potential_energy() / copies - energy) / len(atoms))
    return noise


def pair_counts(dp):
    """What rank 0's domain gave the model, against all the pairs of that domain."""
    domain = dp.last_domain
    everything = DomainEvaluator(dp.potential, dp.skin)
    everything.pruned = False
    pairs = everything.pairs(domain)[0].astype(np.int64)
    with_local = pairs.min(axis=1) < domain.n_local
    paired = np.zeros(len(domain.owners), dtype=bool)
    paired[pairs[with_local].reshape(-1)] = True
    return {
        "pruned": dp.pruned,
        "given": dp.pairs_given,
        "all": len(pairs),
        "with_local": int(with_local.sum()),
        "ghosts": domain.n_ghosts,
        "unpaired_ghosts": int((~paired[domain.n_local :]).sum()),
    }


def leader(dp, calculator, species, per_atom):
    """Every case and a trajectory: deviations and rank 0's pair counts."""
    report = {}
    for name, (positions, types, cell, pbc) in cases.structures(species).items():
        atoms = ase.Atoms(numbers=types, positions=positions, cell=cell, pbc=pbc)
        atoms.calc = calculator
        try:
            atoms.get_potential_energy()
        except RuntimeError as error:
            # metatomic_ase cannot evaluate it (GAP's featomic: a slab's cell)
            report[name] = {"reference_error": str(error).strip().splitlines()[-1]}
            continue
        results = dp.compute(positions, types, cell, pbc, per_atom=per_atom)
        report[name] = {**deviations(results, atoms, per_atom), **pair_counts(dp),
                        "noise/atom": reference_noise(atoms, calculator)}
    # small moves reuse the domains and their pruned pairs, a larger one rebuilds
    positions, types, cell, pbc = cases.structures(species)["triclinic"]
    rng = np.random.default_rng(5)
    worst, rebuilds = {}, dp.rebuilds
    for step in range(4):
        positions = positions + rng.normal(scale=0.03, size=positions.shape)
        if step == 3:
            positions[0] += 0.8 * dp.skin
        atoms = ase.Atoms(numbers=types, positions=positions, cell=cell, pbc=pbc)
        atoms.calc = calculator
        step_deviations = deviations(dp.compute(positions, types, cell, pbc, per_atom=per_atom),
                                     atoms, per_atom)
        worst = {k: max(v, worst.get(k, 0.0)) for k, v in step_deviations.items()}
    report["trajectory"] = {**worst, "rebuilds": dp.rebuilds - rebuilds,
                            "noise/atom": reference_noise(atoms, calculator)}
    return report


def main():
    out = pathlib.Path(sys.argv[1])
    comm = MPI.COMM_WORLD
    reports = {}
    for spec in sys.argv[2:]:
        kind, path, *extensions = spec.split(":")
        extensions = (extensions or [None])[0]
        species = cases.LJ_SPECIES if kind == "lj" else cases.CUAL_SPECIES
        for verify in (False, True):
            potential = mlipdrive.load(
                path, settings={"graph_optimize": False, "verify": verify}, extensions=extensions
            )
            energy = potential.capabilities.outputs[potential.outputs.energy]
            per_atom = energy.sample_kind == "atom"
            dp = DistributedPotential(potential, comm)
            if dp.rank != 0:
                dp.serve()
                continue
            calculator = MetatomicCalculator(path, extensions_directory=extensions,
                                             check_consistency=False)
            with dp:
                reports[f"{kind}:{pathlib.Path(path).name}:verify={verify}"] = leader(
                    dp, calculator, species, per_atom
                )
    if comm.rank == 0:
        out.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
