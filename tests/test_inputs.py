"""Every input right or refused with the true cause (issue 18, Python side).

A damaged model file, a non-finite number in a setting, metatomic's
``non_conservative forces`` / ``stress``, non-conservative heads of the wrong
shape, a model that fails once split into MPI domains (and the i-PI server it
leaves behind), a directory given as the model, ``uncertainty_action stop``
with nothing to check, and the symmetric virial of ``load().compute()``.

The C++ side of the settings rules is checked by compiling the headers that
``generate_python_rules.py`` makes (no LAMMPS needed), and through LAMMPS by
``test_lammps_*`` here (those need the plugin rebuilt from this tree).
"""

import math
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import time
import zipfile
from typing import Dict, List, Optional

import ase.calculators.calculator
import numpy as np
import pytest
import torch
from ase.stress import voigt_6_to_full_3x3_stress
from lammps_testing import lj_lattice_lines, run_lmp, save_argon_variant, WrappedArgon
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import ModelOutput, System
from metatomic_ase import MetatomicCalculator
from parity_models import (
    ParityArgon,
    export_asymmetric_argon,
    export_parity_argon,
    parity_outputs,
)

import mlipdrive
from mlipdrive.ase import MLIPCalculator
from mlipdrive.cli import main
from mlipdrive.loading import ModelLoadError
from mlipdrive.outputs import OutputChoiceError
from mlipdrive.settings import SETTINGS, InferenceSettings, cpp_header
from mlipdrive.uncertainty import UncertaintyWarning
from structures import SAME_MODEL, argon, copper_aluminium

ROOT = pathlib.Path(__file__).resolve().parents[1]


def compute(potential, atoms, **options):
    return potential.compute(atoms.positions, atoms.numbers, atoms.cell.array, True, **options)


# ---------------------------------------------------------------- damaged model file


def damage(source, target, record: str, offset: int = 64):
    """A copy of ``source`` with 8 bytes of the zip record ``record`` (a tensor's
    stored bytes) inverted, as a bad disk or transfer would leave it."""
    shutil.copy(source, target)
    with zipfile.ZipFile(source) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(record))
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size >= offset + 8
    with open(target, "r+b") as file:
        # the data starts after the local header (30 bytes, then name and extra field)
        file.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", file.read(4))
        file.seek(info.header_offset + 30 + name_length + extra_length + offset)
        original = file.read(8)
        file.seek(-8, 1)
        file.write(bytes(255 - b for b in original))
    return target


@pytest.fixture(scope="module")
def damaged_mace(mace_model, tmp_path_factory):
    """The shipped MACE with 8 bytes of its tensor record data/36 changed (issue 18)."""
    return damage(mace_model, tmp_path_factory.mktemp("damaged") / "mace.pt", "data/36")


def test_damaged_model_is_refused_naming_the_record(damaged_mace):
    with pytest.raises(ModelLoadError, match=r"damaged: its record '[^']*data/36' fails "
                       r"its CRC-32 check.*copy the file again"):
        mlipdrive.load(damaged_mace)


def test_damaged_model_is_refused_by_every_front_end(damaged_mace, tmp_path, capsys):
    """ASE, ``mlipdrive info`` and the i-PI client load through the same loader."""
    with pytest.raises(ModelLoadError, match="CRC-32"):
        MLIPCalculator(damaged_mace)
    assert main(["info", str(damaged_mace)]) == 2
    copper_aluminium().write(tmp_path / "init.xyz")
    code = main(["ipi", "--model", str(damaged_mace), "--structure",
                 str(tmp_path / "init.xyz"), "--unix", "never-used"])
    assert code == 2
    assert capsys.readouterr().err.count("fails its CRC-32 check") == 2


def test_truncated_and_random_files_keep_their_message(tmp_path, lj_model):
    """Only a file that is a zip archive gets the CRC check's message."""
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(ModelLoadError, match="not a loadable metatomic model"):
        mlipdrive.load(path)


# ---------------------------------------------------------------- numbers are finite


NUMBER_SETTINGS = [s.name for s in SETTINGS if s.type in (int, float)]


@pytest.mark.parametrize("name", [n for n in NUMBER_SETTINGS if n != "threads"])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN"])
def test_every_number_setting_must_be_finite(name, text):
    with pytest.raises(ValueError, match=rf"setting '{name}' must be a finite number"):
        InferenceSettings.from_strings(**{name: text})
    with pytest.raises(ValueError, match=rf"setting '{name}' must be a finite number"):
        InferenceSettings.preset("default", **{name: float(text)})


def test_scale_nan_is_refused_by_the_front_ends(lj_model, capsys):
    with pytest.raises(ValueError, match="setting 'scale' must be a finite number, got nan"):
        mlipdrive.load(lj_model, settings={"scale": math.nan})
    with pytest.raises(ValueError, match="must be a finite number, got inf"):
        MLIPCalculator(lj_model, settings={"scale": "inf"})
    assert main(["info", str(lj_model), "--scale", "nan"]) == 2
    assert "setting 'scale' must be a finite number, got nan" in capsys.readouterr().err


def test_every_number_row_is_checked_in_cpp():
    """The generated check_settings() holds one check per number row."""
    sys.path.insert(0, str(ROOT / "lammps_plugin"))
    try:
        from generate_python_rules import number_checks
    finally:
        sys.path.pop(0)
    text = "\n".join(number_checks())
    for name in NUMBER_SETTINGS:
        assert f"std::isfinite(static_cast<double>(s.{name}))" in text, name


def run_cpp(tmp_path, body: str) -> str:
    """Compile and run ``main() { body }`` against the generated headers (the
    settings struct and mlipdrive_python_rules.h, as CMake makes them)."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    generated = tmp_path / "generated"
    generated.mkdir()
    (generated / "mlipdrive_settings.h").write_text(cpp_header())
    subprocess.run([sys.executable, str(ROOT / "lammps_plugin" / "generate_python_rules.py"),
                    str(generated / "mlipdrive_python_rules.h")], check=True, timeout=120)
    source = tmp_path / "main.cpp"
    source.write_text('#include <iostream>\n#include "mlipdrive_python_rules.h"\n'
                      "int main() {\n    mlipdrive::InferenceSettings s;\n" + body + "\n}\n")
    program = tmp_path / "main"
    subprocess.run([compiler, "-std=c++20", "-I", str(generated), "-I", str(ROOT / "lammps_plugin"),
                    str(source), "-o", str(program)], check=True, timeout=300)
    return subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout


def test_cpp_rules_refuse_what_python_refuses_and_read_non_conservative(tmp_path):
    body = """
    std::cout << mlipdrive::set_setting(s, "scale", "nan") << "|" << mlipdrive::check_settings(s) << "\\n";
    s = mlipdrive::InferenceSettings();
    std::cout << mlipdrive::set_setting(s, "skin", "inf") << "|" << mlipdrive::check_settings(s) << "\\n";
    for (const char* word: {"forces", "stress", "yes", "off", "On"}) {
        s = mlipdrive::InferenceSettings();
        std::cout << mlipdrive::set_setting(s, "non_conservative", word) << "|" << s.non_conservative
                  << "|" << mlipdrive::forces_from_head(s) << mlipdrive::stress_from_head(s) << "\\n";
    }
    std::cout << mlipdrive::set_setting(s, "non_conservative", "both") << "\\n";
    """
    lines = run_cpp(tmp_path, body).splitlines()
    messages = []
    for name, text in (("scale", "nan"), ("skin", "inf")):
        with pytest.raises(ValueError) as error:
            InferenceSettings.from_strings(**{name: text})
        messages.append(f"|{error.value}")
    assert lines[:2] == messages
    assert lines[2:7] == ["|forces|10", "|stress|01", "|on|11", "|off|00", "|on|11"]
    assert "setting 'non_conservative' must be one of [off, on, forces, stress]" in lines[7]


def lj_lammps_script(pair_style: str) -> str:
    return "\n".join(["units metal", lj_lattice_lines("orthogonal", 2),
                      f"pair_style {pair_style}", "pair_coeff * * Ar", "run 0"])


def test_lammps_scale_nan_stops_at_parsing(tmp_path, lj_model):
    """Needs the plugin rebuilt from this tree (check_settings is generated)."""
    result = run_lmp(tmp_path, lj_lammps_script(f"mlipdrive {lj_model} scale nan"), check=False)
    text = " ".join(result.output.split())
    assert result.returncode != 0 and "ERROR" in text, result.output[-3000:]
    assert "pair_style mlipdrive: setting 'scale' must be a finite number, got nan" in text
    assert "Setting up Verlet run" not in text


# ---------------------------------------------------------------- non_conservative forces/stress


@pytest.fixture(scope="module")
def parity_model(tmp_path_factory):
    """LJ argon whose non-conservative heads give twice LJ's forces and stress."""
    return export_parity_argon(tmp_path_factory.mktemp("models") / "parity.pt")


@pytest.mark.parametrize("text,value", [("forces", "forces"), ("stress", "stress"),
                                        ("yes", "on"), ("True", "on"), ("0", "off")])
def test_non_conservative_words(text, value):
    assert InferenceSettings.from_strings(non_conservative=text).non_conservative == value


@pytest.mark.parametrize("given,value", [(True, "on"), (False, "off"), ("forces", "forces")])
def test_non_conservative_takes_metatomic_python_values(given, value):
    assert mlipdrive.settings.resolve({"non_conservative": given}).non_conservative == value


def test_non_conservative_refuses_other_words():
    with pytest.raises(ValueError, match=r"'non_conservative' must be one of \['off', 'on', "
                       r"'forces', 'stress'\], got 'force'"):
        InferenceSettings.from_strings(non_conservative="force")


@pytest.mark.parametrize("mode", ["forces", "stress"])
def test_ase_non_conservative_mode_matches_metatomic(parity_model, mode):
    """'forces': forces from the head (twice LJ's), stress by autograd; 'stress'
    the other way round; both as metatomic_ase's non_conservative='forces'/'stress'."""
    atoms = argon(repeat=2, rattle=0.05, strain=0.02, seed=3)
    theirs = MetatomicCalculator(str(parity_model), non_conservative=mode,
                                 uncertainty_threshold=None)
    theirs.calculate(atoms, ["energy", "forces", "stress"], ase.calculators.calculator.all_changes)
    ours = MLIPCalculator(parity_model, settings={"non_conservative": mode})
    ours.calculate(atoms, ["energy", "forces", "stress"], ase.calculators.calculator.all_changes)
    for key in ("energy", "forces", "stress"):
        np.testing.assert_allclose(ours.results[key], theirs.results[key], rtol=0, atol=SAME_MODEL)
    plain = compute(mlipdrive.load(parity_model), atoms)
    factors = {"forces": (2.0, 1.0), "stress": (1.0, 2.0)}[mode]
    np.testing.assert_allclose(ours.results["forces"], factors[0] * plain.forces, atol=SAME_MODEL)
    np.testing.assert_allclose(ours.results["stress"], factors[1] * np.concatenate(
        [np.diag(plain.stress), plain.stress[[1, 0, 0], [2, 2, 1]]]), atol=SAME_MODEL)


@pytest.mark.parametrize("mode", ["forces", "stress", "on"])
def test_non_conservative_mode_in_domains_equals_the_whole(parity_model, mode):
    """Four domains (ghosts, no periodicity across the cuts) add up to the whole
    structure in each mode: the heads get the structure's cell where they give
    the stress, the backward pass the domain's."""
    from mlipdrive.halo import Decomposition, DomainEvaluator

    atoms = argon(repeat=3, seed=4)
    potential = mlipdrive.load(parity_model, settings={"non_conservative": mode})
    positions, types, cell, pbc = atoms.positions, atoms.numbers, atoms.cell.array, np.ones(3, bool)
    whole = potential.compute(positions, types, cell, pbc)
    split = Decomposition(positions, cell, pbc, 4, potential.interaction_range, grid=(2, 2, 1))
    evaluator = DomainEvaluator(potential)
    total = mlipdrive.Results(energy=0.0, forces=0.0, virial=0.0)
    for domain in range(4):
        share = evaluator.evaluate(split.domain(domain), types, structure_cell=cell,
                                   structure_pbc=pbc)
        for name in ("energy", "forces", "virial"):
            setattr(total, name, getattr(total, name) + getattr(share, name))
    potential.finish(total)
    for name in ("forces", "virial"):
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=0,
                                   atol=SAME_MODEL)


def test_non_conservative_stress_needs_its_head(tmp_path, parity_model):
    """'stress' asks for the stress head alone: a model without one is refused
    (with 'on' it is a note: forces from the head, no stress)."""
    only_forces = save_argon_variant(
        ParityArgon(), tmp_path / "no-stress.pt", "no-stress", "no stress head",
        outputs={k: v for k, v in parity_outputs(False, False).items()
                 if not k.startswith("non_conservative_stress")},
    )
    assert mlipdrive.load(parity_model, settings={"non_conservative": "stress"})
    with pytest.raises(OutputChoiceError, match="'non_conservative stress' needs a "
                       "'non_conservative_stress' output"):
        mlipdrive.load(only_forces, settings={"non_conservative": "stress"})
    notes = mlipdrive.load(only_forces, settings={"non_conservative": "on"}).notes
    assert any("no 'non_conservative_stress' output" in note for note in notes)


# ---------------------------------------------------------------- heads of the wrong shape


class WideHeads(torch.nn.Module):
    """The parity model with two properties in the heads called ``names``, where
    metatomic's definition has one: values (atoms, 3, 2) and (1, 3, 3, 2)."""

    def __init__(self, names: List[str]):
        super().__init__()
        self.inner = ParityArgon()
        self.names = names

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        results = self.inner(systems, outputs, selected_atoms)
        for name in self.names:
            if name in results:
                block = results[name].block()
                values = torch.cat([block.values, block.values], dim=-1)
                properties = Labels(["n"], torch.tensor([[0], [1]], device=values.device))
                wide = TensorBlock(values, block.samples, block.components, properties)
                results[name] = TensorMap(results[name].keys, [wide])
        return results


@pytest.mark.parametrize("head,shapes", [
    ("non_conservative_force", r"\(32, 3, 2\), expected \(32, 3, 1\)"),
    ("non_conservative_stress", r"\(1, 3, 3, 2\), expected \(1, 3, 3, 1\)"),
])
def test_head_of_the_wrong_shape_names_the_output(tmp_path, head, shapes):
    model = save_argon_variant(WideHeads([head]), tmp_path / "wide.pt", "wide-heads",
                               "a head of the wrong shape", outputs=parity_outputs(False, False))
    atoms = argon(repeat=2)
    assert len(atoms) == 32
    potential = mlipdrive.load(model, settings={"non_conservative": "on"})
    with pytest.raises(RuntimeError, match=rf"the model's '{head}' output has values of shape "
                       + shapes):
        compute(potential, atoms)


# ---------------------------------------------------------------- a model that fails in domains


class WholeStructureOnly(WrappedArgon):
    """LJ argon that fails when given ``selected_atoms``, as a model with
    long-range terms fails on a domain of the structure (torch-pme's
    'linalg.inv ... singular')."""

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        if selected_atoms is not None:
            raise ValueError("linalg.inv: the matrix is singular")
        return self.lj(systems, outputs, selected_atoms)


@pytest.fixture(scope="module")
def whole_only(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "whole-only.pt"
    return save_argon_variant(WholeStructureOnly(), path, "whole-only", "fails on domains")


def test_model_failing_in_domains_is_told_to_run_on_one_rank(whole_only):
    from mpi4py import MPI

    from mlipdrive.decomposition import DistributedPotential

    atoms = argon(repeat=2)
    potential = mlipdrive.load(whole_only)
    assert np.isfinite(compute(potential, atoms).energy)
    split = DistributedPotential(potential, MPI.COMM_SELF, decompose_serial=True)
    with pytest.raises(RuntimeError) as error:
        split.compute(atoms.positions, atoms.numbers, atoms.cell.array, True)
    text = str(error.value)
    assert text.startswith("MPI rank 0: ") and "linalg.inv: the matrix is singular" in text
    assert "may not support domain decomposition" in text and "long-range" in text
    assert "Run it on one MPI rank (without mpirun, or with mpirun -np 1)" in text
    assert "Traceback (most recent call last)" not in text  # no Python trace for a model error
    split.close()


def test_ipi_client_failing_in_domains_leaves_ipi_stoppable(whole_only, tmp_path):
    """``mpirun -np 2 mlipdrive ipi`` with a model that fails on domains: the
    client exits 6 with the cause and what to do, and i-PI, left waiting for a
    client, stops cleanly on Ctrl-C (SIGINT) as the message says."""
    pytest.importorskip("mpi4py")
    from ipi_testing import (Processes, Simulation, client_command, ipi_command,
                             remove_unix_socket, unique_address, write_input)
    from mlipdrive.ipi import EXIT_EVALUATION

    argon(repeat=2).write(tmp_path / "init.xyz", format="extxyz")
    name = unique_address("d")
    write_input(tmp_path, Simulation(steps=20), unix=name)
    try:
        with Processes(tmp_path) as processes:
            server = processes.start(ipi_command(), "ipi")
            client = processes.start(client_command("mpi", whole_only, unix=name), "client")
            code = processes.wait(client, 180)
            log = processes.log(client)
            time.sleep(1.0)
            assert server.poll() is None, processes.log(server)
            server.send_signal(signal.SIGINT)
            assert processes.wait(server, 60) == 0, processes.log(server)
    finally:
        remove_unix_socket(name)
    assert code == EXIT_EVALUATION, log
    assert "may not support domain decomposition" in log and "Run it on one MPI rank" in log
    assert "i-PI keeps this structure for the next client" in log
    assert "stop i-PI with Ctrl-C" in log


# ---------------------------------------------------------------- smaller ones


def test_directory_as_model_says_it_is_a_directory(tmp_path):
    with pytest.raises(ModelLoadError, match=r"is a directory, not a model file"):
        mlipdrive.load(tmp_path)


def test_stop_without_uncertainty_output_says_the_check_is_off(lj_model):
    with pytest.warns(UncertaintyWarning, match=r"uncertainty_action 'stop'.*has no "
                      r"'energy_uncertainty' output: nothing is checked"):
        potential = mlipdrive.load(lj_model, settings={"uncertainty_action": "stop"})
    assert any("nothing is checked" in note for note in potential.notes)
    # the default (warn) and a check turned off say nothing
    assert mlipdrive.load(lj_model).notes == []
    off = {"uncertainty_action": "stop", "uncertainty_threshold": "off"}
    assert mlipdrive.load(lj_model, settings=off).notes == []


def test_virial_and_stress_are_symmetric_as_metatomic_ase_gives_them(tmp_path):
    """A model whose -dE/d(strain) is not symmetric (as PET's and P3M's are
    not, by round-off or more): the virial and stress of compute() are the
    symmetric part, equal to metatomic_ase's stress."""
    model = export_asymmetric_argon(tmp_path / "asymmetric.pt")
    atoms = argon(repeat=2, seed=2)
    results = compute(mlipdrive.load(model), atoms)
    np.testing.assert_array_equal(results.virial, results.virial.T)
    np.testing.assert_array_equal(results.stress, results.stress.T)
    theirs = MetatomicCalculator(str(model), uncertainty_threshold=None)
    theirs.calculate(atoms, ["stress"], ase.calculators.calculator.all_changes)
    expected = voigt_6_to_full_3x3_stress(theirs.results["stress"])
    np.testing.assert_allclose(results.stress, expected, rtol=0, atol=SAME_MODEL)
    # the model's extra c x y per atom makes -dE/d(strain) asymmetric by c (Σx² - Σy²)
    x, y = atoms.positions[:, 0], atoms.positions[:, 1]
    assert abs((x * x).sum() - (y * y).sum()) * 1e-4 > 1e3 * SAME_MODEL


def test_lammps_model_failing_in_domains_is_told_to_run_on_one_rank(whole_only, tmp_path):
    """2 ranks (mixed layout): the model's own error, then the domain advice, not
    'atoms too close' alone."""
    result = run_lmp(tmp_path, lj_lammps_script(f"mlipdrive {whole_only}"), ranks=2, check=False)
    text = " ".join(result.output.split())
    assert result.returncode != 0 and "linalg.inv: the matrix is singular" in text, text[-3000:]
    assert "the model may not support domain decomposition" in text, text[-3000:]
    assert "Run it on one MPI rank" in text, text[-3000:]


@pytest.mark.parametrize("head,shapes", [
    ("non_conservative_force", "(32, 3, 2), expected (32, 3, 1)"),
    ("non_conservative_stress", "(1, 3, 3, 2), expected (1, 3, 3, 1)"),
])
def test_lammps_head_of_the_wrong_shape_names_the_output(tmp_path, head, shapes):
    model = save_argon_variant(WideHeads([head]), tmp_path / "wide.pt", "wide-heads",
                               "a head of the wrong shape", outputs=parity_outputs(False, False))
    script = lj_lammps_script(f"mlipdrive {model} non_conservative on")
    script = script.replace("run 0", "thermo_style custom step pe press\nrun 0")
    result = run_lmp(tmp_path, script, check=False)
    text = " ".join(result.output.split())
    assert result.returncode != 0 and "Segmentation fault" not in text, text[-3000:]
    assert f"the model's '{head}' output has values of shape {shapes}" in text, text[-3000:]


def test_cuda_on_a_cpu_machine_is_said_without_cpp_frames(lj_model):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError) as error:
        mlipdrive.load(lj_model, device="cuda")
    assert "cannot run this model on device 'cuda'" in str(error.value)
    assert "frame #" not in str(error.value) and "Exception raised from" not in str(error.value)
