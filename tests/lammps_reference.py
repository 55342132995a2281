"""What LAMMPS wrote, against metatomic's own ASE calculator.

A workflow test puts :func:`checkpoint` lines in its LAMMPS input wherever it
wants a comparison: each dumps the structure LAMMPS evaluated (box, boundaries,
ids, types, positions) with LAMMPS's forces and per-atom energies, and appends
LAMMPS's energy, virial and the sums of its per-atom energies and virials to
``checkpoints.txt``. :func:`read_checkpoints` reads them back and
:func:`compare_with_reference` evaluates the same structure with
``metatomic_ase.MetatomicCalculator``, an implementation that shares no code
with ours, and returns the differences. :func:`trace` lines dump the same every
few steps of a run (and at the events of prd), without a run of their own;
:func:`read_trace` reads them back.
"""

import dataclasses
import functools
import json
import os
import pathlib
import sys
import warnings
from typing import Dict, List, Optional, Sequence

import ase
import ase.calculators.calculator
import numpy as np
from lammps_testing import read_dump
from metatomic.torch import unit_conversion_factor

# LAMMPS's conversion of pressure x volume to energy (force->nktv2p, set in
# LAMMPS's update.cpp for each unit style)
NKTV2P = {"metal": 1.6021765e6, "real": 68568.415}
ENERGY_UNIT = {"metal": "eV", "real": "kcal/mol"}

COMPUTES = """
compute mlipdrive_pe all pe/atom
compute mlipdrive_pe_sum all reduce sum c_mlipdrive_pe
compute mlipdrive_stress all stress/atom NULL virial
compute mlipdrive_stress_sum all reduce sum c_mlipdrive_stress[1] c_mlipdrive_stress[2] &
    c_mlipdrive_stress[3] c_mlipdrive_stress[4] c_mlipdrive_stress[5] c_mlipdrive_stress[6]
compute mlipdrive_pv all pressure NULL virial
thermo_style custom step pe vol c_mlipdrive_pe_sum c_mlipdrive_pv[*] c_mlipdrive_stress_sum[*]
thermo_modify format float %.17g
"""

_VALUES = ["pe", "vol", "c_mlipdrive_pe_sum"]
_VALUES += [f"c_mlipdrive_pv[{k}]" for k in range(1, 7)]
_VALUES += [f"c_mlipdrive_stress_sum[{k}]" for k in range(1, 7)]


def checkpoint(name: str) -> str:
    """LAMMPS lines that evaluate the current structure (run 0) and record it."""
    values = " ".join(f"$({value}:%.17g)" for value in _VALUES)
    return "\n".join(
        [
            f"dump mlipdrive_checkpoint all custom 1 {name}.dump id type x y z fx fy fz c_mlipdrive_pe",
            "dump_modify mlipdrive_checkpoint format float %.17g sort id",
            "run 0",
            "undump mlipdrive_checkpoint",
            f'print "{name} $(step) {values}" append checkpoints.txt screen no',
        ]
    )


@dataclasses.dataclass
class LammpsFrame:
    """One checkpoint: the structure LAMMPS evaluated and what it computed."""

    name: str
    cell: np.ndarray  # rows, the restricted triclinic box
    pbc: np.ndarray
    ids: np.ndarray
    types: np.ndarray
    positions: np.ndarray
    forces: np.ndarray
    energies: np.ndarray  # per atom, compute pe/atom
    energy: float  # thermo pe
    energies_sum: float  # sum of pe/atom
    virial: np.ndarray  # Voigt (xx yy zz xy xz yz), energy units, LAMMPS's sign (sum r f)
    atom_virial_sum: np.ndarray  # the same from the sum of stress/atom


def read_checkpoints(directory: pathlib.Path, units: str = "metal") -> Dict[str, LammpsFrame]:
    """Every checkpoint a run wrote in ``directory``, by name."""
    frames = {}
    for line in (pathlib.Path(directory) / "checkpoints.txt").read_text().splitlines():
        name, _, *numbers = line.split()
        values = dict(zip(_VALUES, map(float, numbers)))
        frames[name] = _frame(pathlib.Path(directory) / f"{name}.dump", name, values, units)
    return frames


def _frame(dump: pathlib.Path, name: str, values: Dict[str, float], units: str) -> LammpsFrame:
    cell, pbc = read_dump_box(dump)
    atoms = read_dump(dump)
    pressure_volume = np.array([values[f"c_mlipdrive_pv[{k}]"] for k in range(1, 7)]) * values["vol"]
    atom_stress = np.array([values[f"c_mlipdrive_stress_sum[{k}]"] for k in range(1, 7)])
    return LammpsFrame(
        name=name,
        cell=cell,
        pbc=pbc,
        ids=atoms["id"].astype(int),
        types=atoms["type"].astype(int),
        positions=np.stack([atoms["x"], atoms["y"], atoms["z"]], axis=1),
        forces=np.stack([atoms["fx"], atoms["fy"], atoms["fz"]], axis=1),
        energies=atoms["c_mlipdrive_pe"],
        energy=values["pe"],
        energies_sum=values["c_mlipdrive_pe_sum"],
        virial=pressure_volume / NKTV2P[units],
        atom_virial_sum=-atom_stress / NKTV2P[units],
    )


def read_dump_box(path: pathlib.Path):
    """Box rows (the restricted triclinic cell) and periodicity of a one-frame text dump."""
    lines = pathlib.Path(path).read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("ITEM: BOX BOUNDS")))
    return dump_box(lines[start : start + 4])


def dump_box(lines: Sequence[str]):
    """Box rows and periodicity from a dump's ``ITEM: BOX BOUNDS`` line and the 3 after it."""
    header = lines[0].split()[3:]
    bounds = np.array([[float(v) for v in lines[k].split()] for k in (1, 2, 3)])
    triclinic = header[0] == "xy"
    flags = header[3:] if triclinic else header
    pbc = np.array([flag == "pp" for flag in flags])
    xy, xz, yz = bounds[:, 2] if triclinic else (0.0, 0.0, 0.0)
    # dumps give the bounding box of a tilted cell: undo LAMMPS's documented offsets
    xlo = bounds[0, 0] - min(0.0, xy, xz, xy + xz)
    xhi = bounds[0, 1] - max(0.0, xy, xz, xy + xz)
    ylo = bounds[1, 0] - min(0.0, yz)
    yhi = bounds[1, 1] - max(0.0, yz)
    zlo, zhi = bounds[2, 0], bounds[2, 1]
    cell = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, zhi - zlo]])
    return cell, pbc


#: the forces fix store/force kept for trace (fx fy fz: LAMMPS's forces, with every fix's)
STORED_FORCES = "f_mlipdrive_raw[1] f_mlipdrive_raw[2] f_mlipdrive_raw[3]"
_PER_ATOM = "c_mlipdrive_pe " + " ".join(f"c_mlipdrive_stress[{k}]" for k in range(1, 7))


def trace(every: int, name: str = "trace") -> str:
    """LAMMPS lines that append to ``name.dump``, every ``every`` steps and whenever a
    command writes all dumps (events of prd), the structure LAMMPS evaluated with the
    pair style's forces, per-atom energies and virials (the computes of COMPUTES).

    The forces are stored by ``fix store/force`` before any fix defined later adds its
    own (langevin, indent, neb): put these lines before such fixes. ``name`` may hold
    LAMMPS variables (``trace.${w}``: one file per partition). Where a command sets the
    timestep back (prd, tad), use a thermo_style without COMPUTES's per-atom sums: a
    dump at a step number thermo already printed gets the per-atom values of then.
    """
    return "fix mlipdrive_raw all store/force\n" + trace_dump(every, name)


def trace_dump(every: int, name: str = "trace", forces: str = STORED_FORCES) -> str:
    """The dump of :func:`trace` alone: to define it again after ``undump
    mlipdrive_trace`` (read_dump resets the timestep only without dumps), or with
    other ``forces`` columns."""
    return "\n".join(
        [
            f"dump mlipdrive_trace all custom {every} {name}.dump id type x y z {forces} {_PER_ATOM}",
            "dump_modify mlipdrive_trace format float %.17g sort id append yes",
        ]
    )


def read_trace(path: pathlib.Path, units: str = "metal") -> List[LammpsFrame]:
    """Every frame of a :func:`trace` dump; the energy and virial are the sums of the
    per-atom ones (thermo may not print at the steps a dump is written)."""
    lines = pathlib.Path(path).read_text().splitlines() if pathlib.Path(path).exists() else []
    frames, start = [], 0
    while start < len(lines):
        step, n_atoms = int(lines[start + 1]), int(lines[start + 3])
        end = start + 9 + n_atoms
        name = f"{pathlib.Path(path).stem}@{step}#{len(frames)}"
        frames.append(_trace_frame(name, lines[start + 4 : start + 8], lines[start + 8 : end], units))
        start = end
    return frames


def _trace_frame(name: str, box: Sequence[str], atoms: Sequence[str], units: str) -> LammpsFrame:
    cell, pbc = dump_box(box)
    rows = np.array([[float(v) for v in line.split()] for line in atoms[1:]]).reshape(-1, 15)
    rows = rows[np.argsort(rows[:, 0])]
    energies = rows[:, 8]
    virial = -rows[:, 9:15].sum(axis=0) / NKTV2P[units]
    return LammpsFrame(
        name=name,
        cell=cell,
        pbc=pbc,
        ids=rows[:, 0].astype(int),
        types=rows[:, 1].astype(int),
        positions=rows[:, 2:5],
        forces=rows[:, 5:8],
        energies=energies,
        energy=float(energies.sum()),
        energies_sum=float(energies.sum()),
        virial=virial,
        atom_virial_sum=virial,
    )


@functools.lru_cache(maxsize=None)
def reference_calculator(path: str, extensions: Optional[str]):
    """metatomic's own ASE calculator for a model file (one per model and process)."""
    from metatomic_ase import MetatomicCalculator

    return MetatomicCalculator(path, extensions_directory=extensions, check_consistency=False)


@dataclasses.dataclass
class Reference:
    energy: float
    energies: np.ndarray
    forces: np.ndarray
    virial: np.ndarray  # Voigt, LAMMPS's sign


def evaluate_reference(frame: LammpsFrame, family, numbers: np.ndarray, units: str) -> Reference:
    """The reference calculator on the atoms of ``frame`` whose atomic number is not 0."""
    ours = numbers != 0
    atoms = ase.Atoms(numbers=numbers[ours], positions=frame.positions[ours], cell=frame.cell, pbc=frame.pbc)
    calculator = reference_calculator(str(family.path), _optional_str(family.extensions))
    with warnings.catch_warnings():
        # metatomic_ase warns that the stress of a non-periodic system is "likely
        # wrong"; as the strain derivative of positions and periodic cell vectors
        # it is exactly LAMMPS's virial, which is what we compare
        warnings.simplefilter("ignore", UserWarning)
        calculator.calculate(atoms, ["energy", "energies", "forces", "stress"], ase.calculators.calculator.all_changes)
    results = calculator.results
    scale = unit_conversion_factor("eV", ENERGY_UNIT[units])
    forces = np.zeros_like(frame.positions)
    forces[ours] = results["forces"]
    energies = np.zeros(len(numbers))
    energies[ours] = results["energies"]
    virial = -np.asarray(results["stress"])[[0, 1, 2, 5, 4, 3]] * abs(np.linalg.det(frame.cell))
    return Reference(scale * float(results["energy"]), scale * energies, scale * forces, scale * virial)


def _optional_str(value) -> Optional[str]:
    return None if value is None else str(value)


def compare_with_reference(
    frame: LammpsFrame, family, elements: Sequence[int], units: str = "metal"
) -> Dict[str, float]:
    """Largest differences between LAMMPS and the reference, per atom and in eV/Å units.

    ``elements[type - 1]`` is the atomic number of each LAMMPS type (0 for a
    type left to another pair style).
    """
    numbers = np.asarray(elements)[frame.types - 1]
    reference = evaluate_reference(frame, family, numbers, units)
    to_ev = unit_conversion_factor(ENERGY_UNIT[units], "eV")
    n_atoms = max(int((numbers != 0).sum()), 1)
    volume = abs(np.linalg.det(frame.cell))
    return {
        "energy/atom": to_ev * abs(frame.energy - reference.energy) / n_atoms,
        "energies": to_ev * np.abs(frame.energies - reference.energies).max(initial=0.0),
        "forces": to_ev * np.abs(frame.forces - reference.forces).max(initial=0.0),
        "stress": to_ev * np.abs(frame.virial - reference.virial).max() / volume,
        "pe/atom sum": to_ev * abs(frame.energies_sum - frame.energy) / n_atoms,
        "stress/atom sum": to_ev * np.abs(frame.atom_virial_sum - frame.virial).max() / volume,
    }


def energy_limits(frame: LammpsFrame, family, units: str) -> Dict[str, float]:
    """Energy limits: the family's, or a few roundings of the energies in its dtype.

    A float32 model's per-atom energies of ~0.5 eV agree to a few 1e-7 eV only, and
    their sum over a different order of atoms (ghosts layout, MPI) to ~1e-5 eV.
    """
    eps = float(np.finfo(np.float32 if family.dtype == "float32" else np.float64).eps)
    to_ev = unit_conversion_factor(ENERGY_UNIT[units], "eV")
    n_atoms = len(frame.ids)
    per_atom = max(family.energy_per_atom, 32 * eps * to_ev * np.abs(frame.energies).max(initial=0.0))
    total = max(family.energy_per_atom, 8 * eps * to_ev * abs(frame.energy) / n_atoms)
    return {"energy/atom": total, "energies": per_atom, "pe/atom sum": total}


def assert_matches_reference(
    frames: List[LammpsFrame], family, elements: Sequence[int], units: str = "metal", label: Optional[str] = None
) -> Dict[str, Dict[str, float]]:
    """Every frame within the family's tolerances of the reference; the errors by frame,
    recorded under ``label`` (default: the family's name)."""
    failed, report = {}, {}
    for frame in frames:
        limits = {"forces": family.forces, "stress": family.stress, "stress/atom sum": family.stress}
        limits.update(energy_limits(frame, family, units))
        errors = compare_with_reference(frame, family, elements, units)
        report[frame.name] = errors
        over = {key: (value, limits[key]) for key, value in errors.items() if not value <= limits[key]}
        if over:
            failed[frame.name] = over
    record(label or family.name, report)
    assert not failed, f"{family.name}: (difference, limit) over the limits: {failed}"
    return report


def record(family_name: str, report: Dict[str, Dict[str, float]]) -> None:
    """Append the largest differences to $MLIPDRIVE_REFERENCE_REPORT (JSON lines), if set.

    ``python tests/lammps_reference.py FILE`` prints the largest per family.
    """
    path = os.environ.get("MLIPDRIVE_REFERENCE_REPORT")
    if not path:
        return
    largest = {key: max(errors[key] for errors in report.values()) for key in next(iter(report.values()))}
    with open(path, "a") as file:
        file.write(json.dumps({"family": family_name, **{k: float(v) for k, v in largest.items()}}) + "\n")


def summarize(path: str) -> None:
    """The largest difference of each kind, per family, over a report file."""
    rows = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]
    for family in sorted({row["family"] for row in rows}):
        mine = [row for row in rows if row["family"] == family]
        keys = [key for key in mine[0] if key != "family"]
        text = ", ".join(f"{key} {max(row[key] for row in mine):.1e}" for key in keys)
        print(f"{family} ({len(mine)} runs): {text}")


if __name__ == "__main__":
    summarize(sys.argv[1])
