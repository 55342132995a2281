"""NVE with ASE's VelocityVerlet around any calculator, timed in blocks."""

from ..matrix import Row
from ..measure import PhaseTimer, drift
from . import _common


def run_verlet(row: Row, atoms, calculator, on_warm=None) -> dict:
    """Run ``row``'s warm-up and timed blocks of ``VelocityVerlet`` steps.

    ``on_warm()`` runs after the warm-up (reset the caller's counters there).
    Returns the measured blocks plus 'calculator_ms' (time inside the
    calculator per step), 'energy0_per_atom' and the drift. Energies are read
    from ``calculator.results`` after each step, never recomputed.
    """
    from ase.md.verlet import VelocityVerlet
    from ase.units import fs

    timer = PhaseTimer()
    calculate = calculator.calculate

    def timed_calculate(*args, **kwargs):
        with timer("calculator"):
            return calculate(*args, **kwargs)

    calculator.calculate = timed_calculate
    atoms.calc = calculator
    energy0 = atoms.get_potential_energy()
    dynamics = VelocityVerlet(atoms, timestep=row.timestep_fs * fs)
    samples = []
    state = {"measuring": False}

    def observe():
        if state["measuring"] and dynamics.nsteps % row.thermo_every == 0:
            potential = calculator.results["energy"]
            samples.append((dynamics.nsteps, potential + atoms.get_kinetic_energy()))

    dynamics.attach(observe, interval=1)

    def warm():
        state["measuring"] = True
        timer.reset()
        if on_warm is not None:
            on_warm()

    measured = _common.timed_blocks(row, dynamics.run, on_warm=warm)
    steps, energies = zip(*samples) if samples else ((), ())
    measured["calculator_ms"] = 1e3 * timer.seconds["calculator"] / measured["measured_steps"]
    measured["energy0_per_atom"] = energy0 / len(atoms)
    measured["drift_ev_per_atom_ps"] = drift(
        [s * row.timestep_fs * 1e-3 for s in steps], energies, len(atoms)
    )
    return measured
