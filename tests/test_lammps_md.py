"""The shipped MACE model (message passing, two layers) through pair_style mlipdrive.

- one frame: LAMMPS energy, forces, virial and per-atom energies equal the Python
  driver's to 1e-10 (float64), serial (periodic layout) and on two MPI ranks
  (local + ghost atoms, ghost shell of two cutoffs);
- per-atom energies sum to the total and per-atom virials to the global virial;
- a 2000-step NVE run conserves energy (drift per atom per ps recorded);
- fix npt runs and the cell responds.
"""

import numpy as np
import pytest
from lammps_testing import lower_triangular, read_dump, run_lmp, write_data

import mlipdrive
from mlipdrive.testing import SAME_MODEL, copper_aluminium

# LAMMPS's conversion of pressure x volume to energy for units metal
# (force->nktv2p in LAMMPS's update.cpp): bar * Å^3 -> eV
NKTV2P_METAL = 1.6021765e6
MASSES = {1: 63.546, 2: 26.9815385}
TYPES = {29: 1, 13: 2}
VOIGT = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]


def structure_data(path, atoms):
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    types = [TYPES[z] for z in atoms.numbers]
    write_data(path, cell, positions, types, MASSES)
    return cell, positions


@pytest.fixture(scope="module")
def frame(tmp_path_factory, mace_model):
    """A 108-atom strained, rattled CuAl frame and the Python driver's results on it."""
    directory = tmp_path_factory.mktemp("mace-frame")
    atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03, seed=7)
    cell, positions = structure_data(directory / "frame.data", atoms)
    potential = mlipdrive.load(mace_model, units="metal")
    reference = potential.compute(
        positions, atoms.numbers, cell, True, forces=True, stress=True, per_atom=True
    )
    return directory, reference, abs(np.linalg.det(cell))


FRAME_SCRIPT = """
units metal
boundary p p p
read_data {data}
pair_style mlipdrive {model} {options}
pair_coeff * * Cu Al
# a small skin: the ghost shell is the interaction range (9 A) + skin
neighbor 0.5 bin
compute pe_atom all pe/atom
compute pe_sum all reduce sum c_pe_atom
compute stress all stress/atom NULL virial
compute stress_sum all reduce sum c_stress[1] c_stress[2] c_stress[3] c_stress[4] c_stress[5] c_stress[6]
compute pv all pressure NULL virial
thermo_style custom step pe c_pe_sum vol c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6] &
    c_stress_sum[1] c_stress_sum[2] c_stress_sum[3] c_stress_sum[4] c_stress_sum[5] c_stress_sum[6]
thermo_modify format float %.17g
dump frame all custom 1 frame.dump id fx fy fz c_pe_atom
dump_modify frame format float %.17g sort id
run 0
"""


@pytest.mark.parametrize(
    "ranks, options",
    [(1, ""), (2, "")],
    ids=["serial-periodic", "np2-ghosts"],
)
def test_frame_matches_python_driver(tmp_path, frame, mace_model, ranks, options):
    directory, reference, volume = frame
    script = FRAME_SCRIPT.format(data=directory / "frame.data", model=mace_model, options=options)
    result = run_lmp(tmp_path, script, ranks)
    thermo = result.thermo()
    dump = read_dump(tmp_path / "frame.dump")

    energy_error = abs(thermo["PotEng"][0] - reference.energy) / abs(reference.energy)
    forces = np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1)
    force_error = np.abs(forces - reference.forces).max() / np.abs(reference.forces).max()
    # LAMMPS's virial pressure tensor back to a virial (energy), LAMMPS's sign
    virial = np.array([thermo[f"c_pv[{k + 1}]"][0] for k in range(6)]) * volume / NKTV2P_METAL
    expected = np.array([0.5 * (reference.virial[a, b] + reference.virial[b, a]) for a, b in VOIGT])
    virial_error = np.abs(virial - expected).max() / np.abs(expected).max()
    energies_error = np.abs(dump["c_pe_atom"] - reference.energies).max() / np.abs(reference.energies).max()
    errors = {
        "energy": energy_error,
        "forces": force_error,
        "virial": virial_error,
        "per-atom energies": energies_error,
        "max |dF| eV/A": np.abs(forces - reference.forces).max(),
    }
    assert energy_error <= SAME_MODEL and force_error <= SAME_MODEL, errors
    assert virial_error <= SAME_MODEL and energies_error <= SAME_MODEL, errors

    # per-atom energies sum to the total, per-atom virials to the global virial
    assert abs(thermo["c_pe_sum"][0] - thermo["PotEng"][0]) <= 1e-12 * abs(thermo["PotEng"][0])
    from_atoms = -np.array([thermo[f"c_stress_sum[{k + 1}]"][0] for k in range(6)]) / volume
    global_ = np.array([thermo[f"c_pv[{k + 1}]"][0] for k in range(6)])
    assert np.abs(from_atoms - global_).max() <= 1e-10 * np.abs(global_).max()
    if ranks == 2:
        assert "communication cutoff set to" in result.output


SUM_SCRIPT = """
units metal
boundary p p p
read_data {data}
pair_style mlipdrive {model} atom_energy_sum on
pair_coeff * * Cu Al
neighbor 0.5 bin
compute pv all pressure NULL virial
thermo_style custom step pe c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
thermo_modify format float %.17g
dump frame all custom 1 frame.dump id fx fy fz
dump_modify frame format float %.17g sort id
run 0
"""


@pytest.mark.parametrize("ranks", [1, 2], ids=["serial-periodic", "np2-ghosts"])
def test_atom_energy_sum_matches_model_total(tmp_path, frame, mace_model, ranks):
    """atom_energy_sum (no pe/atom asked): the plugin sums the model's per-atom
    energies itself; energy, forces and virial stay those of the model's total."""
    directory, reference, volume = frame
    script = SUM_SCRIPT.format(data=directory / "frame.data", model=mace_model)
    result = run_lmp(tmp_path, script, ranks)
    thermo = result.thermo()
    dump = read_dump(tmp_path / "frame.dump")
    forces = np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1)
    virial = np.array([thermo[f"c_pv[{k + 1}]"][0] for k in range(6)]) * volume / NKTV2P_METAL
    expected = np.array([0.5 * (reference.virial[a, b] + reference.virial[b, a]) for a, b in VOIGT])
    assert abs(thermo["PotEng"][0] - reference.energy) <= SAME_MODEL * abs(reference.energy)
    assert np.abs(forces - reference.forces).max() <= SAME_MODEL * np.abs(reference.forces).max()
    assert np.abs(virial - expected).max() <= SAME_MODEL * np.abs(expected).max()


def test_nve_energy_conservation(tmp_path, mace_model):
    """2000 steps of 1 fs at ~300 K: the total energy does not drift.

    16 atoms in a 7.5 x 7.5 x 3.75 Å cell (many periodic images) keep it quick.
    """
    atoms = copper_aluminium(repeat=(2, 2, 1), rattle=0.05, strain=0.0, seed=3)
    structure_data(tmp_path / "start.data", atoms)
    script = "\n".join(
        [
            "units metal",
            "boundary p p p",
            "read_data start.data",
            f"pair_style mlipdrive {mace_model}",
            "pair_coeff * * Cu Al",
            "velocity all create 600 2025 loop geom",
            "timestep 0.001",
            "fix 1 all nve",
            "thermo_style custom step time pe ke etotal",
            "thermo_modify format float %.17g",
            "thermo 20",
            "run 2000",
        ]
    )
    result = run_lmp(tmp_path, script)
    thermo = result.thermo()
    n_atoms = len(atoms)
    time_ps = thermo["Time"]
    etotal = thermo["TotEng"] / n_atoms
    slope, _ = np.polyfit(time_ps, etotal, 1)
    fluctuation = etotal.std()
    kinetic = thermo["KinEng"].mean() / n_atoms
    assert thermo["Step"][-1] == 2000
    # the atoms move (a temperature of ~300 K) while the total energy stays put
    assert kinetic > 0.02
    assert abs(slope) < 1e-4, (slope, fluctuation)
    assert fluctuation < 1e-3, (slope, fluctuation)


def test_npt_cell_responds(tmp_path, mace_model):
    """A box expanded by 3 % under fix npt at zero pressure: the cell shrinks back."""
    atoms = copper_aluminium(repeat=2, rattle=0.02, strain=0.0, seed=5)
    atoms.set_cell(atoms.cell.array * 1.03, scale_atoms=True)
    structure_data(tmp_path / "start.data", atoms)
    script = "\n".join(
        [
            "units metal",
            "boundary p p p",
            "read_data start.data",
            f"pair_style mlipdrive {mace_model}",
            "pair_coeff * * Cu Al",
            "velocity all create 300 77 loop geom",
            "timestep 0.002",
            "fix 1 all npt temp 300 300 0.1 tri 0 0 0.2",
            "thermo_style custom step pe press vol lx ly lz xy xz yz",
            "thermo_modify format float %.17g",
            "thermo 25",
            "run 200",
        ]
    )
    result = run_lmp(tmp_path, script)
    thermo = result.thermo()
    assert np.isfinite(thermo["PotEng"]).all()
    # tensile stress at the start (negative pressure), then the box contracts
    assert thermo["Press"][0] < 0
    assert thermo["Volume"].min() < 0.97 * thermo["Volume"][0], thermo["Volume"]
    assert np.abs(np.diff(thermo["Xy"])).max() > 0 or np.abs(np.diff(thermo["Xz"])).max() > 0
