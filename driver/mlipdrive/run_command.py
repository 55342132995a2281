"""``mlipdrive run``: a short NVE run with ASE's Verlet integrator, printing energies."""

import argparse

from .cli import (
    add_settings_arguments,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    settings_from_arguments,
)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "run", help="ASE molecular dynamics demo (NVE)",
        description="A short NVE run of a model with ASE's velocity Verlet, printing the "
        "potential, kinetic and total energy every few steps: a quick check that a model "
        "runs and conserves energy with the settings given; e.g. 'mlipdrive run --model "
        "model.pt --settings turbo --steps 200'.",
    )
    parser.add_argument("--model", required=True, help="exported metatomic model (.pt)")
    parser.add_argument(
        "--structure", default=None,
        help="any file ASE reads; default: a rattled fcc Cu supercell",
    )
    parser.add_argument("--repeat", type=positive_int, default=3,
                        help="supercell size of the default (default: 3)")
    parser.add_argument("--steps", type=non_negative_int, default=100,
                        help="MD steps; 0 prints the initial energies only (default: 100)")
    parser.add_argument("--timestep", type=positive_float, default=1.0,
                        help="fs (default: 1)")
    parser.add_argument("--temperature", type=non_negative_float, default=300.0,
                        help="K, initial (default: 300)")
    parser.add_argument("--print-every", type=positive_int, default=10,
                        help="steps between printed lines (default: 10)")
    parser.add_argument("--seed", type=non_negative_int, default=1,
                        help="seed of the initial velocities (default: 1)")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import ase.build
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from ._structure import read_structure
    from .ase import MLIPCalculator

    if args.structure is None:
        atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(args.repeat)
    else:
        atoms = read_structure(args.structure)
    rng = np.random.default_rng(args.seed)
    atoms.calc = MLIPCalculator(
        args.model,
        settings=settings_from_arguments(args),
        device=args.device,
        extensions=args.extensions,
    )
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=rng)
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=args.timestep * units.fs)
    n_atoms = len(atoms)

    def report():
        potential = atoms.get_potential_energy() / n_atoms
        kinetic = atoms.get_kinetic_energy() / n_atoms
        temperature = atoms.get_temperature()
        print(
            f"{dynamics.nsteps:8d} {potential:14.8f} {kinetic:12.8f} "
            f"{potential + kinetic:14.8f} {temperature:9.2f}",
            flush=True,
        )

    print(f"# {n_atoms} atoms, {args.steps} steps of {args.timestep} fs, model {args.model}")
    print(f"# {'step':>6} {'Epot/atom eV':>14} {'Ekin/atom':>12} {'Etot/atom':>14} {'T K':>9}")
    dynamics.attach(report, interval=args.print_every)
    dynamics.run(args.steps)
    return 0
