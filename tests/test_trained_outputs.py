"""metatomic's output options on models trained with metatrain (``models/``):
``pet_llpr/pet-cual-llpr.pt`` (two energy variants, a per-atom LLPR energy
uncertainty for each) and ``soap_bpnn_nc/soap-bpnn-cual-nc.pt`` (direct force
and stress heads), in ASE, LAMMPS (1 and 2 ranks) and i-PI (serial and MPI),
each against metatomic's own engines given the same option.

The uncertainty warning fires far from the training data (the 108-atom Cu/Al
frame compressed to 80 %, nearest neighbours ~2.1 Å, none closer than ~2.3 Å
in training; a Cu-Al dimer) and stays silent near it (the frame itself), as
``models/pet_llpr/uncertainty_check.py`` documents.
"""

import dataclasses
import warnings

import ase
import ase.calculators.calculator
import numpy as np
import pytest
from ipi_families import family_clients
from ipi_testing import Simulation, read_extras, run_simulation
from lammps_testing import lower_triangular
from metatomic.torch import ModelOutput
from metatomic_ase import MetatomicCalculator
from model_families import MODEL_FAMILIES, MODELS, import_python_modules
from structures import copper_aluminium
from test_lammps_parity import evaluate, lammps_warning, reference

from mlipdrive.ase import MLIPCalculator
from mlipdrive.uncertainty import UncertaintyWarning, check_uncertainty

# PET's tolerances: in float64 too, ghosts as separate atoms (LAMMPS on 2 ranks,
# MPI domains) change its outputs by ~1e-8 eV/atom (see models/pet/MODEL_CARD.md)
LLPR = dataclasses.replace(
    MODEL_FAMILIES["pet"], name="pet_llpr", path=MODELS / "pet_llpr" / "pet-cual-llpr.pt",
    dtype="float64",
)
# Hartree per atom: the uncertainty through MPI domains (PET's reach, as above)
UNCERTAINTY_MPI = 1e-9
HEADS = dataclasses.replace(
    MODEL_FAMILIES["soap_bpnn"], name="soap_bpnn_nc",
    path=MODELS / "soap_bpnn_nc" / "soap-bpnn-cual-nc.pt",
)


@pytest.fixture(scope="module", autouse=True)
def heads_extension():
    import_python_modules(HEADS)


def near():
    """The tests' 108-atom Cu/Al frame, inside the training distribution."""
    atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03)
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    return ase.Atoms(atoms.numbers, positions=positions, cell=cell, pbc=True)


def compressed():
    """The same frame at 80 % of its lattice constant: far from the training data."""
    atoms = near()
    atoms.set_cell(0.8 * atoms.cell.array, scale_atoms=True)
    return atoms


def dimer():
    return ase.Atoms("CuAl", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]], pbc=False)


def uncertainty_of(atoms, variant=None):
    """metatomic's ASE calculator: the model's per-atom uncertainty (eV)."""
    name = "energy_uncertainty" + (f"/{variant}" if variant else "")
    calculator = MetatomicCalculator(str(LLPR.path), variants={"energy": variant})
    values = calculator.run_model(atoms, {name: ModelOutput(unit="eV", sample_kind="atom")})
    return values[name].block().values.detach().numpy().reshape(-1)


# ------------------------------------------------------------------- ASE


@pytest.mark.parametrize("variant", [None, "morse"])
def test_ase_variant_matches_metatomic(variant):
    atoms = near()
    theirs = MetatomicCalculator(str(LLPR.path), variants={"energy": variant}, uncertainty_threshold=None)
    theirs.calculate(atoms, ["energy", "forces", "stress"], ase.calculators.calculator.all_changes)
    # (the Morse head is less sure of this frame: 0.105 eV on one atom)
    ours = MLIPCalculator(LLPR.path, settings={"variant": variant or "", "uncertainty_threshold": 1.0})
    ours.calculate(atoms, ["energy", "forces", "stress"], ase.calculators.calculator.all_changes)
    assert abs(ours.results["energy"] - theirs.results["energy"]) / len(atoms) <= LLPR.energy_per_atom
    assert np.abs(ours.results["forces"] - theirs.results["forces"]).max() <= LLPR.forces
    assert np.abs(ours.results["stress"] - theirs.results["stress"]).max() <= LLPR.stress
    np.testing.assert_allclose(ours.results["energy_uncertainty"], uncertainty_of(atoms, variant),
                               rtol=0, atol=1e-10)


def test_ase_uncertainty_warns_far_from_the_training_data_only():
    calculator = MLIPCalculator(LLPR.path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncertaintyWarning)
        calculator.get_potential_energy(near())
    assert calculator.results["energy_uncertainty"].max() < 0.1
    for atoms in (compressed(), dimer()):
        with pytest.warns(UncertaintyWarning, match="above the threshold of 0.1 eV/atom"):
            calculator.get_potential_energy(atoms)


def test_ase_non_conservative_heads_match_metatomic():
    atoms = near()
    theirs = MetatomicCalculator(str(HEADS.path), extensions_directory=str(HEADS.extensions),
                                 non_conservative=True)
    theirs.calculate(atoms, ["energy", "forces", "stress"], ase.calculators.calculator.all_changes)
    ours = MLIPCalculator(HEADS.path, extensions=HEADS.extensions,
                          settings={"non_conservative": True})
    ours.calculate(atoms, ["energy", "forces", "stress"], ase.calculators.calculator.all_changes)
    for key in ("energy", "forces", "stress"):
        np.testing.assert_allclose(ours.results[key], theirs.results[key], rtol=0, atol=1e-10)
    # the heads are not the gradients (models/soap_bpnn_nc/MODEL_CARD.md: ~0.1 eV/Å)
    gradients = MLIPCalculator(HEADS.path, extensions=HEADS.extensions)
    assert np.abs(gradients.get_forces(atoms) - ours.results["forces"]).max() > 1e-2


# ---------------------------------------------------------------- LAMMPS


@pytest.mark.parametrize("ranks", [1, 2])
def test_lammps_uncertainty_warns_far_and_not_near(tmp_path, ranks):
    _, quiet = evaluate(tmp_path / "near", LLPR.path, "", ranks, near(), uncertainty=True)
    assert "energy uncertainty above" not in quiet.output
    atoms = compressed()
    ours, result = evaluate(tmp_path / "far", LLPR.path, "", ranks, atoms, uncertainty=True)
    evaluated = ase.Atoms(atoms.numbers, positions=ours["positions"], cell=atoms.cell, pbc=True)
    expected = uncertainty_of(evaluated)
    np.testing.assert_allclose(ours["uncertainty"], expected, rtol=0, atol=1e-8)
    with pytest.warns(UncertaintyWarning) as python:
        check_uncertainty(ours["uncertainty"], 0.1, "warn", "step 0",
                          labels=np.arange(1, len(atoms) + 1))
    assert lammps_warning(result.output) == str(python[0].message)


@pytest.mark.parametrize("ranks", [1, 2])
def test_lammps_variant_matches_metatomic(tmp_path, ranks):
    atoms = near()
    ours, _ = evaluate(tmp_path, LLPR.path, "variant morse", ranks, atoms)
    expected = reference(LLPR.path, atoms, ours["positions"], {"variants": {"energy": "morse"}})
    assert abs(ours["energy"] - expected["energy"]) / len(atoms) <= LLPR.energy_per_atom
    assert np.abs(ours["forces"] - expected["forces"]).max() <= LLPR.forces
    assert np.abs(ours["virial"] - expected["virial"]).max() / atoms.get_volume() <= LLPR.stress


def test_lammps_non_conservative_heads_match_metatomic(tmp_path):
    """One rank: on more, metatrain 2026.4.1's SOAP-BPNN fails inside its stress
    head for selected atoms (its per-atom stress meets the volumes of every atom
    of the System), and LAMMPS asks for the virial at setup: the same in
    metatomic's own LAMMPS. The LJ heads (test_lammps_parity.py) run on 2 ranks."""
    atoms = near()
    keywords = f"non_conservative on extensions {HEADS.extensions}"
    ours, _ = evaluate(tmp_path, HEADS.path, keywords, 1, atoms)
    expected = reference(HEADS.path, atoms, ours["positions"], {"non_conservative": True},
                         str(HEADS.extensions))
    for key in ("energy", "forces", "virial"):
        np.testing.assert_allclose(ours[key], expected[key], rtol=0, atol=1e-9, err_msg=key)


# ------------------------------------------------------------------- i-PI


@pytest.mark.parametrize("kind", ["ipi-driver", "mpi-driver"])
def test_ipi_uncertainty_extras_match_ipis_driver(tmp_path, kind):
    """The same extras as i-PI's driver (Hartree per atom), serial and under MPI."""
    simulation = Simulation(steps=2, temperature_k=300.0, timestep_fs=1.0, extras=True,
                            extras_type="energy_uncertainty")
    structure = copper_aluminium(repeat=2)
    params = "uncertainty_threshold=0.1,energy_variant=morse"
    runs = [run_simulation(tmp_path / k, structure, simulation, LLPR.path, [k], params=params)
            for k in ("reference", kind)]
    theirs, ours = (read_extras(run.directory / "sim.extras_0") for run in runs)
    assert len(ours) == len(theirs) == 3
    np.testing.assert_allclose(ours[0], theirs[0], rtol=0,
                               atol=UNCERTAINTY_MPI if kind == "mpi-driver" else 1e-12)


def test_ipi_non_conservative_heads_match_ipis_driver(tmp_path):
    simulation = Simulation(steps=4, temperature_k=300.0, timestep_fs=1.0)
    structure = copper_aluminium(repeat=2)
    with family_clients(HEADS):
        runs = [run_simulation(tmp_path / k, structure, simulation, HEADS.path, [k],
                               params="non_conservative=True")
                for k in ("reference", "ipi-driver")]
    reference_run, ours = runs
    assert np.abs(ours.positions[0] - reference_run.positions[0]).max() < 1e-9
    np.testing.assert_allclose(ours.properties, reference_run.properties, rtol=1e-8, atol=1e-14)
