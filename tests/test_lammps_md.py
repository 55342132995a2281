"""pair_style mlipdrive in molecular dynamics, with every shipped model family
(MACE float64, PET float32, SOAP-BPNN float64 with its TorchScript extension).

- atom_energy_sum on: with no pe/atom asked, the plugin sums the model's
  per-atom energies itself; energy, forces and virial equal metatomic's own ASE
  calculator (tests/lammps_reference.py) within the family's tolerances, serial
  (periodic layout) and on two MPI ranks (mixed layout: ghosts across the cut axis);
- an NVE run conserves energy (the drift per atom per ps and the fluctuation
  are printed with ``pytest -s``), and its last frame equals the reference;
- fix npt runs, the cell responds, and the last frame equals the reference.

One frame against the reference on every boundary, cell, rank count and
workflow is tests/test_lammps_workflows.py. ``make test`` runs the MD tests in
full for MACE and a shorter NVE run for the other families; their full runs are
marked ``matrix`` (``pytest -m matrix``).
"""

import dataclasses

import numpy as np
import pytest
from lammps_reference import (
    COMPUTES,
    NKTV2P,
    assert_matches_reference,
    checkpoint,
    read_checkpoints,
)
from lammps_testing import expected_layout, lower_triangular, read_dump, run_lmp, write_data

from structures import copper_aluminium

MASSES = {1: 63.546, 2: 26.9815385}
TYPES = {29: 1, 13: 2}
ELEMENTS = [29, 13]  # atomic number of LAMMPS type 1, 2
FAMILIES = ["mace", "pet", "soap_bpnn"]


def structure_data(path, atoms):
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    types = [TYPES[z] for z in atoms.numbers]
    write_data(path, cell, positions, types, MASSES)
    return cell, positions


def pair_style(family, options=""):
    extensions = f" extensions {family.extensions}" if family.extensions else ""
    return f"pair_style mlipdrive {family.path}{extensions} {options}".rstrip()


def compare(tmp_path, family, frames=None):
    """Every checkpoint the run wrote (or ``frames``) against the reference."""
    frames = list(read_checkpoints(tmp_path).values()) if frames is None else frames
    report = assert_matches_reference(frames, family, ELEMENTS)
    for name, errors in report.items():
        print(f"LAMMPS {family.name} {name}: "
              + " ".join(f"{k}={v:.2e}" for k, v in errors.items()))
    return report


def families(default):
    """The families as parameters; those not in ``default`` are marked matrix."""
    return [pytest.param(f, marks=() if f in default else (pytest.mark.matrix,), id=f)
            for f in FAMILIES]


# ------------------------------------------------------------ atom_energy_sum

SUM_SCRIPT = """
units metal
boundary p p p
read_data frame.data
{pair_style}
pair_coeff * * Cu Al
neighbor 0.5 bin
compute pv all pressure NULL virial
thermo_style custom step pe vol c_pv[1] c_pv[2] c_pv[3] c_pv[4] c_pv[5] c_pv[6]
thermo_modify format float %.17g
dump plain all custom 1 plain.dump id fx fy fz
dump_modify plain format float %.17g sort id
run 0
undump plain
{computes}
{checkpoint}
"""


@pytest.mark.parametrize(
    "model_family, ranks",
    [
        pytest.param(family, ranks, id=f"{family}-{layout}",
                     marks=() if family == "mace" or ranks == 1 else (pytest.mark.matrix,))
        for family in FAMILIES
        for ranks, layout in ((1, "serial-periodic"), (2, "np2-mixed"))
    ],
    indirect=["model_family"],
)
def test_atom_energy_sum_matches_model_total(tmp_path, model_family, ranks):
    """atom_energy_sum on: first a run 0 with no pe/atom asked (the plugin sums
    the model's per-atom energies itself), then a checkpoint of the same
    structure (pe/atom and stress/atom asked). Both against the reference."""
    atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03, seed=7)
    structure_data(tmp_path / "frame.data", atoms)
    script = SUM_SCRIPT.format(
        pair_style=pair_style(model_family, "atom_energy_sum on"),
        computes=COMPUTES,
        checkpoint=checkpoint("checkpoint"),
    )
    result = run_lmp(tmp_path, script, ranks)
    plain = result.runs()[0]
    frame = read_checkpoints(tmp_path)["checkpoint"]
    dump = read_dump(tmp_path / "plain.dump")
    assert np.array_equal(dump["id"], frame.ids)
    pressure = np.array([plain[f"c_pv[{k}]"][0] for k in range(1, 7)])
    without_pe_atom = dataclasses.replace(
        frame,
        name="no_pe_atom",
        energy=plain["PotEng"][0],
        forces=np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1),
        virial=pressure * plain["Volume"][0] / NKTV2P["metal"],
    )
    # the energies, energies_sum and atom_virial_sum of the checkpoint stay: the
    # pe/atom and stress/atom sums are compared with the run 0 values
    compare(tmp_path, model_family, [frame, without_pe_atom])
    assert f"mlipdrive: {expected_layout(result.output)} layout" in result.output
    if ranks == 2 and message_passing(model_family):
        # a ghost shell of the whole interaction range + skin (MACE, PET: 2 x 4.5 Å)
        cutoff = model_family.interaction_range + 0.5
        assert f"mlipdrive: communication cutoff set to {cutoff:g}" in result.output


def message_passing(family) -> bool:
    """Whether the model's interaction range exceeds its neighbour lists' cutoffs."""
    from metatomic.torch import load_atomistic_model

    extensions = None if family.extensions is None else str(family.extensions)
    model = load_atomistic_model(str(family.path), extensions_directory=extensions)
    cutoffs = [request.cutoff for request in model.requested_neighbor_lists()]
    return family.interaction_range > max(cutoffs) + 1e-9


# ------------------------------------------------------------------------ NVE

# Drift limits in eV/atom/ps, by the model's dtype. Measured (16 atoms, 1 fs,
# 600 K initial), |slope of the total energy|: 2000 steps MACE 2.3e-7, SOAP-BPNN
# 8.5e-7 (float64), PET 1.4e-7 (float32); 500 steps PET 3.3e-6, SOAP-BPNN 1.3e-6
# (a shorter fit is noisier: ~4e-6 eV/atom of Verlet fluctuation over 0.5 ps).
# float32 forces carry ~1e-6 eV/Å of round-off that is the gradient of nothing;
# even if it always pushed the same way it would add at most F·v·dt ~ 5e-9
# eV/atom per step, 5e-6 eV/atom/ps. So one limit, 20x above that, suits both
# dtypes, and forces that miss the energy's gradient by 1e-3 eV/Å (a lost
# extension gradient costs SOAP-BPNN 0.1 eV/Å) drift by ~5e-3 eV/atom/ps.
DRIFT_LIMIT = {"float64": 1e-4, "float32": 1e-4}
# the Verlet fluctuation at 1 fs, ~4e-6 eV/atom for every family
FLUCTUATION_LIMIT = 1e-3  # eV/atom


@pytest.mark.parametrize(
    "model_family, steps",
    [pytest.param(f, 2000, marks=() if f == "mace" else (pytest.mark.matrix,), id=f"{f}-2000")
     for f in FAMILIES]
    + [pytest.param(f, 500, id=f"{f}-500") for f in FAMILIES if f != "mace"],
    indirect=["model_family"],
)
def test_nve_energy_conservation(tmp_path, model_family, steps):
    """``steps`` steps of 1 fs at ~300 K: the total energy does not drift, and
    the last frame equals the reference.

    16 atoms in a 7.5 x 7.5 x 3.75 Å cell (many periodic images) keep it quick.
    """
    atoms = copper_aluminium(repeat=(2, 2, 1), rattle=0.05, strain=0.0, seed=3)
    structure_data(tmp_path / "start.data", atoms)
    script = "\n".join(
        [
            "units metal",
            "boundary p p p",
            "read_data start.data",
            pair_style(model_family),
            "pair_coeff * * Cu Al",
            "velocity all create 600 2025 loop geom",
            "timestep 0.001",
            "fix 1 all nve",
            "thermo_style custom step time pe ke etotal",
            "thermo_modify format float %.17g",
            "thermo 20",
            f"run {steps}",
            COMPUTES,
            checkpoint("end"),
        ]
    )
    result = run_lmp(tmp_path, script)
    thermo = result.runs()[0]
    n_atoms = len(atoms)
    time_ps = thermo["Time"]
    etotal = thermo["TotEng"] / n_atoms
    slope, _ = np.polyfit(time_ps, etotal, 1)
    fluctuation = etotal.std()
    kinetic = thermo["KinEng"].mean() / n_atoms
    print(f"NVE {model_family.name} {steps} steps: drift {slope:.2e} eV/atom/ps, "
          f"fluctuation {fluctuation:.2e} eV/atom, kinetic {kinetic:.3f} eV/atom")
    assert thermo["Step"][-1] == steps
    # the atoms move (a temperature of ~300 K) while the total energy stays put
    assert kinetic > 0.02
    assert abs(slope) < DRIFT_LIMIT[model_family.dtype], (slope, fluctuation)
    assert fluctuation < FLUCTUATION_LIMIT, (slope, fluctuation)
    compare(tmp_path, model_family)


# ------------------------------------------------------------------------ NPT


@pytest.mark.parametrize("model_family", families(default=["mace"]), indirect=True)
def test_npt_cell_responds(tmp_path, model_family):
    """A box expanded by 3 % under fix npt at zero pressure: the cell shrinks
    back, and the last (triclinic) frame equals the reference."""
    atoms = copper_aluminium(repeat=2, rattle=0.02, strain=0.0, seed=5)
    atoms.set_cell(atoms.cell.array * 1.03, scale_atoms=True)
    structure_data(tmp_path / "start.data", atoms)
    script = "\n".join(
        [
            "units metal",
            "boundary p p p",
            "read_data start.data",
            pair_style(model_family),
            "pair_coeff * * Cu Al",
            "velocity all create 300 77 loop geom",
            "timestep 0.002",
            "fix 1 all npt temp 300 300 0.1 tri 0 0 0.2",
            "thermo_style custom step pe press vol lx ly lz xy xz yz",
            "thermo_modify format float %.17g",
            "thermo 25",
            "run 200",
            "unfix 1",
            COMPUTES,
            checkpoint("end"),
        ]
    )
    result = run_lmp(tmp_path, script)
    thermo = result.runs()[0]
    assert np.isfinite(thermo["PotEng"]).all()
    volume = thermo["Volume"]
    print(f"NPT {model_family.name}: pressure {thermo['Press'].round(0).tolist()} bar, "
          f"volume {volume.round(1).tolist()} A^3")
    # tensile stress at the start (negative pressure); the barostat's first swing
    # (from the thermal start) is outwards for every model, then the tension pulls
    # the box back by over 1 % (how far within 0.4 ps depends on the model's
    # stiffness: MACE 7 %, PET 4 %, SOAP-BPNN 2 %). A virial of the wrong sign or
    # none would leave only outward pressure: the box would keep growing.
    assert thermo["Press"][0] < 0
    largest = int(np.argmax(volume))
    assert volume[largest:].min() < 0.99 * volume[largest], volume
    assert np.abs(np.diff(thermo["Xy"])).max() > 0 or np.abs(np.diff(thermo["Xz"])).max() > 0
    compare(tmp_path, model_family)
