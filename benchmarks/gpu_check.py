"""``python -m mlipdrive.bench.gpu_check``: are our engines right on a device?

::

    python -m mlipdrive.bench.gpu_check --device cuda --output gpu_check.json
    python -m mlipdrive.bench.gpu_check --device cpu --sizes 108     # dry run, no GPU

On CuAl alloys of the shipped MACE (float64) it evaluates, on ``--device``:
the Python driver (``Potential.compute``), the ASE calculator
(``MLIPCalculator``) and our i-PI client (a real ``i-pi`` server, step 0's
potential energy), and compares each with metatomic's own ASE calculator
(``metatomic_ase.MetatomicCalculator``) on the same device, which is also
compared with itself on the CPU. Then the ``turbo`` preset (float32, and TF32
on CUDA) against the float64 reference: how far the fast path is. Writes one
JSON; exit code 1 when a float64 comparison is beyond :data:`FLOAT64_LIMITS`.
Speed is measured separately by ``mlipdrive bench --device ...``
(benchmarks/gpu_check.sh runs both).
"""

import argparse
import json
import pathlib
import shlex
import sys
import tempfile
from typing import Dict

import numpy as np

#: float64, same model, two engines on one device (or one engine on two
#: devices): only the order of floating-point sums differs
FLOAT64_LIMITS = {"energy_per_atom": 1e-9, "forces": 1e-9, "stress": 1e-9}  # eV, eV/Å, eV/Å³


def structure(atoms: int, seed: int = 0):
    """A thermalised random CuAl fcc alloy of about ``atoms`` atoms (the harness's)."""
    from .systems import CUAL, build

    return build(CUAL, atoms, seed=seed)


def reference(atoms, model: str, device: str) -> Dict[str, np.ndarray]:
    """metatomic's own calculator: energy (eV), forces (eV/Å), stress (eV/Å³, Voigt)."""
    from metatomic_ase import MetatomicCalculator

    return _ase_results(atoms, MetatomicCalculator(model, device=device))


def ase_calculator(atoms, model: str, device: str, settings: str = "default"):
    from mlipdrive.ase import MLIPCalculator

    return _ase_results(atoms, MLIPCalculator(model, device=device, settings=settings))


def _ase_results(atoms, calculator) -> Dict[str, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calculator
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
            "stress": atoms.get_stress()}


def driver(atoms, model: str, device: str, settings: str = "default") -> Dict[str, np.ndarray]:
    from ase.stress import full_3x3_to_voigt_6_stress

    import mlipdrive

    potential = mlipdrive.load(model, settings=settings, device=device)
    results = potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc)
    return {"energy": results.energy, "forces": results.forces,
            "stress": full_3x3_to_voigt_6_stress(results.stress)}


def ipi_energy(atoms, model: str, device: str, workdir: pathlib.Path):
    """(potential energy in eV of step 0 of an i-PI run with our client on
    ``device``, the structure i-PI sent). Both come back from atomic units
    with the client's own factors (i-PI's): i-PI reads an extended XYZ file
    with ASE's Bohr, 1e-8 relative away from them, so the structure the model
    saw is the one of i-PI's trajectory, not the file."""
    from mlipdrive.ipi._client import BOHR_PER_ANGSTROM, HARTREE_PER_EV
    from ipi_testing import Simulation, read_binary_trajectory, run_simulation

    run = run_simulation(workdir, atoms, Simulation(steps=1), model, ["mlipdrive"],
                         extra=["--device", device])
    positions, cells = read_binary_trajectory(workdir / "sim.pos_0.bin")
    sent = atoms.copy()
    sent.positions = positions[0] / BOHR_PER_ANGSTROM
    sent.cell = cells[0].T / BOHR_PER_ANGSTROM  # i-PI's lattice vectors are columns
    return float(run.property("potential")[0]) / HARTREE_PER_EV, sent


def differences(ours: dict, theirs: dict, n_atoms: int) -> Dict[str, float]:
    found = {"energy_per_atom": abs(ours["energy"] - theirs["energy"]) / n_atoms}
    for key in ("forces", "stress"):
        if key in ours:
            found[key] = float(np.abs(np.asarray(ours[key]) - theirs[key]).max())
    return found


def within(found: Dict[str, float], limits: Dict[str, float]) -> bool:
    return all(found[key] <= limits[key] for key in found)


def check_size(n_atoms: int, model: str, device: str, workdir: pathlib.Path) -> dict:
    """Every comparison on one structure."""
    atoms = structure(n_atoms)
    ref = reference(atoms, model, device)
    n = len(atoms)
    float64 = {
        "metatomic_ase device vs cpu": differences(ref, reference(atoms, model, "cpu"), n),
        "driver": differences(driver(atoms, model, device), ref, n),
        "ase": differences(ase_calculator(atoms, model, device), ref, n),
        "ipi": _ipi_differences(atoms, model, device, workdir / f"ipi-{n}"),
    }
    turbo = {
        "driver turbo vs float64 reference": differences(driver(atoms, model, device, "turbo"),
                                                           ref, n),
        "ase turbo vs float64 reference": differences(
            ase_calculator(atoms, model, device, "turbo"), ref, n),
    }
    return {"atoms": n, "float64": float64, "turbo": turbo,
            "float64_ok": all(within(d, FLOAT64_LIMITS) for d in float64.values())}


def _ipi_differences(atoms, model, device, workdir) -> Dict[str, float]:
    energy, started_from = ipi_energy(atoms, model, device, workdir)
    return differences({"energy": energy}, reference(started_from, model, device), len(atoms))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlipdrive.bench.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default=None, help="default: the shipped MACE")
    parser.add_argument("--sizes", nargs="+", type=int, default=[108, 1000])
    parser.add_argument("--output", default="gpu_check.json")
    args = parser.parse_args(argv)
    from . import environment
    from .models import MACE_PATH

    model = args.model or str(MACE_PATH)
    words = sys.argv[1:] if argv is None else argv
    record = environment.start_record(
        "mlipdrive-gpu-check/1", " ".join([parser.prog] + [shlex.quote(w) for w in words]),
        device=args.device, model=model, limits_float64=FLOAT64_LIMITS,
    )
    with tempfile.TemporaryDirectory() as scratch:
        record["sizes"] = [check_size(n, model, args.device, pathlib.Path(scratch))
                           for n in args.sizes]
    record["float64_ok"] = all(size["float64_ok"] for size in record["sizes"])
    environment.finish_record(record)
    pathlib.Path(args.output).write_text(json.dumps(record, indent=1) + "\n")
    for size in record["sizes"]:
        print(f"{size['atoms']} atoms on {args.device}: float64 "
              f"{'ok' if size['float64_ok'] else 'BEYOND LIMITS'}")
        for name, found in {**size["float64"], **size["turbo"]}.items():
            print(f"  {name}: " + ", ".join(f"{k} {v:.2e}" for k, v in found.items()))
    return 0 if record["float64_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
