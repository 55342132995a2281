"""Every kind of model of tests/model_kinds.py through ASE, LAMMPS (1 and 2 ranks)
and the i-PI client, in the ``default`` and ``turbo`` presets: each case equals
metatomic's own ASE calculator within the kind's tolerances, or is refused with a
message that names the real cause (``ModelKind.refused``). Also the dtype rule
itself (``mlipdrive.loading.tensor_map_weights``) on small models made here.

``make test`` runs the ASE cases, the dtype rule, and a slice of the LAMMPS and
i-PI cases in which every kind and every engine appears; the rest is marked
``matrix``::

    .venv/bin/python -m pytest -m matrix tests/test_model_kinds.py

The largest differences are printed (``pytest -s``) as ``KIND`` lines.
"""

import functools
import pathlib
import re
import signal
import warnings
from typing import Dict, List, Optional

import ase
import ase.calculators.calculator
import ase.io
import numpy as np
import pytest
import torch
from ase.stress import voigt_6_to_full_3x3_stress
from ipi_families import compare_runs, family_clients, report
from lammps_reference import read_dump_box
from lammps_testing import lower_triangular, read_dump, run_lmp, write_data
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput, System
from metatomic_ase import MetatomicCalculator
from model_kinds import (
    DTYPE_REFUSAL,
    KIND_NAMES,
    LONG_RANGE_SPLIT,
    NO_DEFAULT_OUTPUT,
    PET_LR,
    ModelKind,
    save_without_extensions,
)

import mlipdrive
from ipi_testing import Simulation, run_simulation
from mlipdrive.ase import MLIPCalculator
from mlipdrive.loading import ModelLoadError, load_model, tensor_map_weights
from structures import FLOAT32_ENERGY_PER_ATOM, copper_aluminium

PRESETS = ["default", "turbo"]
MASSES = {1: 63.546, 2: 26.9815385}
# LAMMPS's pressure x volume to eV (metal units)
NKTV2P = 1.6021765e6


def settings_of(kind: ModelKind, preset: str) -> Dict[str, str]:
    return {"preset": preset, **kind.settings}


@functools.lru_cache(maxsize=None)
def _reference(path: str, extensions: Optional[str], variants: Optional[tuple]):
    return MetatomicCalculator(
        path, extensions_directory=extensions, variants=dict(variants) if variants else None
    )


def reference_calculator(kind: ModelKind) -> MetatomicCalculator:
    """metatomic's ASE calculator for the kind (one per model and process)."""
    family = kind.family
    variants = tuple(sorted(kind.variants.items())) if kind.variants else None
    extensions = None if family.extensions is None else str(family.extensions)
    return _reference(str(family.path), extensions, variants)


def reference_results(kind: ModelKind, atoms: ase.Atoms) -> Dict[str, np.ndarray]:
    """Energy, forces, 3x3 stress (and per-atom energies) of metatomic_ase."""
    calculator = reference_calculator(kind)
    properties = ["energy", "forces", "stress"] + (["energies"] if kind.per_atom_energies else [])
    with warnings.catch_warnings():
        # the stress of a structure that is not periodic along every axis "is
        # likely wrong" for metatomic_ase; as a strain derivative it is what we compare
        warnings.simplefilter("ignore", UserWarning)
        calculator.calculate(atoms, properties, ase.calculators.calculator.all_changes)
    results = dict(calculator.results)
    if np.shape(results["stress"]) == (6,):
        results["stress"] = voigt_6_to_full_3x3_stress(results["stress"])
    return results


def assert_equal(kind: ModelKind, preset: str, ours: Dict[str, np.ndarray], theirs,
                 n_atoms: int, what: str):
    """``ours`` within the kind's tolerances (for ``preset``) of ``theirs``."""
    family = kind.tolerances(preset)
    found = {
        "energy/atom": abs(ours["energy"] - theirs["energy"]) / n_atoms,
        "forces": float(np.abs(ours["forces"] - theirs["forces"]).max()),
        "stress": float(np.abs(_symmetric(ours["stress"]) - _symmetric(theirs["stress"])).max()),
    }
    limits = {"energy/atom": family.energy_per_atom, "forces": family.forces,
              "stress": family.stress}
    if kind.per_atom_energies and "energies" in ours:
        found["energies"] = float(np.abs(ours["energies"] - theirs["energies"]).max())
        limits["energies"] = family.energies_limit(theirs["energies"])
    print(f"KIND {kind.name} {preset} {what}: "
          + " ".join(f"{k}={v:.2e}" for k, v in found.items()))
    over = {k: (v, limits[k]) for k, v in found.items() if not v <= limits[k]}
    if kind.known_difference:
        # strict: the day the difference is gone, this fails and asks for the kind to change
        assert over, f"{kind.name}: no difference any more ({kind.known_difference}): drop known_difference"
        pytest.xfail(f"{kind.known_difference}: (difference, limit) {over}")
    assert not over, f"{kind.name} {preset} {what}: (difference, limit) {over}"


def _symmetric(matrix):
    matrix = np.asarray(matrix)
    return 0.5 * (matrix + matrix.T)


# ------------------------------------------------------------ the dtype rule


def _factor_map() -> TensorMap:
    values = torch.tensor([[1.25]], dtype=torch.float64)
    return TensorMap(Labels.single(), [TensorBlock(values, Labels.single(), [], Labels.single())])


def _scaled(energy: TensorMap, factor: torch.Tensor) -> Dict[str, TensorMap]:
    block = energy.block()
    # a matrix product: float32 values times a float64 factor fail, as GAP's kernel
    scaled = TensorBlock(block.values @ factor, block.samples, block.components, block.properties)
    return {"energy": TensorMap(energy.keys, [scaled])}


class TensorMapScaledLJ(torch.nn.Module):
    """LJ times a factor kept in a TensorMap attribute, as metatrain's GAP keeps its
    kernel weights: ``Module.to(float32)`` leaves it float64."""

    def __init__(self):
        super().__init__()
        from lj_model import LennardJones

        self.lj = LennardJones(2.338, 0.409, 5.0, True, False)
        self.factor = _factor_map()

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        energy = self.lj(systems, outputs, selected_atoms)["energy"]
        return _scaled(energy, self.factor.block().values)


class DictScaledLJ(torch.nn.Module):
    """The same factor in a ``Dict[str, TensorMap]`` that the module moves to the
    input's dtype at every call, as metatrain's composition model does."""

    def __init__(self):
        super().__init__()
        from lj_model import LennardJones

        self.lj = LennardJones(2.338, 0.409, 5.0, True, False)
        self.factors: Dict[str, TensorMap] = {"energy": _factor_map()}

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        energy = self.lj(systems, outputs, selected_atoms)["energy"]
        dtype = energy.block().values.dtype
        self.factors = {"energy": self.factors["energy"].to(dtype=dtype)}
        return _scaled(energy, self.factors["energy"].block().values)


def export_scaled(path: pathlib.Path, in_dict: bool) -> pathlib.Path:
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[13, 29], interaction_range=5.0, length_unit="angstrom",
        supported_devices=["cpu"], dtype="float64",
    )
    metadata = ModelMetadata(name="tensormap-lj", description="LJ x a TensorMap factor")
    module = DictScaledLJ() if in_dict else TensorMapScaledLJ()
    return save_without_extensions(AtomisticModel(module.eval(), metadata, capabilities), path)


def test_tensor_map_weights_refused_at_load(tmp_path):
    """A TensorMap attribute stays float64 under dtype float32: refused when the
    model is loaded, with the cause (before: loaded, then the first evaluation
    failed with "expected m1 and m2 to have the same dtype")."""
    path = export_scaled(tmp_path / "scaled.pt", in_dict=False)
    for settings in ("turbo", {"dtype": "float32"}):
        with pytest.raises(ModelLoadError, match=re.escape(DTYPE_REFUSAL)) as raised:
            mlipdrive.load(path, settings=settings)
        assert "TensorMapScaledLJ" in str(raised.value)
        assert "dtype model (or float64)" in str(raised.value)
    # as exported it runs
    atoms = copper_aluminium(repeat=2)
    assert np.isfinite(mlipdrive.load(path).compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True).energy)


def test_tensor_maps_a_model_converts_itself_are_not_refused(tmp_path):
    """TensorMaps in a Dict attribute (metatrain's composition and scaler tables,
    which those modules move to the input's dtype themselves) do not count: such
    a model runs in float32 and equals its float64 self to float32 accuracy."""
    path = export_scaled(tmp_path / "scaled-dict.pt", in_dict=True)
    assert tensor_map_weights(load_model(path)) == []
    atoms = copper_aluminium(repeat=2)
    args = (atoms.positions, atoms.numbers, atoms.cell.array, True)
    single = mlipdrive.load(path, settings={"dtype": "float32"}).compute(*args)
    double = mlipdrive.load(path).compute(*args)
    assert abs(single.energy - double.energy) / len(atoms) < FLOAT32_ENERGY_PER_ATOM


def test_shipped_models_hold_tensor_maps_only_in_dicts():
    """The rule leaves every shipped family convertible (turbo), and names GAP's
    regressor."""
    from model_families import MODEL_FAMILIES
    from model_kinds import GAP

    for family in MODEL_FAMILIES.values():
        assert tensor_map_weights(load_model(family.path, family.extensions)) == [], family.name
    if GAP.path.is_file():
        found = tensor_map_weights(load_model(GAP.path, GAP.extensions))
        assert found == ["metatrain.gap.model.TorchSubsetofRegressors"]


def test_variants_only_needs_a_variant(variants_only_model):
    """No plain 'energy': the default settings are refused with the outputs it has."""
    with pytest.raises(Exception, match=re.escape(NO_DEFAULT_OUTPUT)):
        mlipdrive.load(variants_only_model)


# ------------------------------------------------------------------------ ASE


@pytest.mark.parametrize("preset", PRESETS)
def test_ase(model_kind, preset):
    """mlipdrive's ASE calculator == metatomic_ase, or refused with the cause."""
    family = model_kind.family
    settings = settings_of(model_kind, preset)
    refusal = model_kind.refusal("ase", preset)
    if refusal is not None:
        with pytest.raises(ModelLoadError, match=re.escape(refusal)):
            MLIPCalculator(family.path, settings=settings, extensions=family.extensions)
        return
    for seed in (0, 1):
        atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03, seed=seed)
        theirs = reference_results(model_kind, atoms)
        mine = atoms.copy()
        # one calculator per structure: turbo's fixed_composition refuses new types
        mine.calc = MLIPCalculator(family.path, settings=settings, extensions=family.extensions)
        ours = {
            "energy": mine.get_potential_energy(),
            "forces": mine.get_forces(),
            "stress": mine.get_stress(voigt=False),
        }
        if model_kind.per_atom_energies:
            ours["energies"] = mine.get_potential_energies()
        assert_equal(model_kind, preset, ours, theirs, len(atoms), f"ase seed{seed}")


# --------------------------------------------------------------------- LAMMPS


def lammps_checkpoint(name: str) -> str:
    """Evaluate the current structure (run 0), dump it with forces, print pe and virial."""
    columns = ["pe", "vol", *[f"c_kind_pv[{k}]" for k in range(1, 7)]]
    values = " ".join(f"$({v}:%.17g)" for v in columns)
    return "\n".join([
        f"dump kind all custom 1 {name}.dump id type x y z fx fy fz",
        "dump_modify kind format float %.17g sort id",
        "run 0",
        "undump kind",
        f'print "{name} {values}" append checkpoints.txt screen no',
    ])


def lammps_script(kind: ModelKind, preset: str) -> str:
    family = kind.family
    options = f" extensions {family.extensions}" if family.extensions is not None else ""
    options += f" settings {preset}" + "".join(f" {k} {v}" for k, v in kind.settings.items())
    return "\n".join([
        "units metal",
        "boundary p p p",
        "atom_style atomic",
        "read_data frame.data",
        f"pair_style mlipdrive {family.path}{options}",
        "pair_coeff * * Cu Al",
        "neighbor 1.0 bin",
        "compute kind_pv all pressure NULL virial",
        "thermo_style custom step pe c_kind_pv[*]",
        lammps_checkpoint("start"),
        "velocity all create 600 4928 loop geom",
        "fix nve all nve",
        "timestep 0.002",
        "run 10",
        "unfix nve",
        lammps_checkpoint("after_md"),
    ])


def lammps_frames(directory: pathlib.Path):
    """(name, atoms, LAMMPS's results) for each checkpoint, in eV, Å."""
    for line in (directory / "checkpoints.txt").read_text().splitlines():
        name, *numbers = line.split()
        pe, volume, *pv = map(float, numbers)
        cell, pbc = read_dump_box(directory / f"{name}.dump")
        dump = read_dump(directory / f"{name}.dump")
        numbers_ = np.where(dump["type"].astype(int) == 1, 29, 13)
        positions = np.stack([dump["x"], dump["y"], dump["z"]], axis=1)
        atoms = ase.Atoms(numbers=numbers_, positions=positions, cell=cell, pbc=pbc)
        xx, yy, zz, xy, xz, yz = np.array(pv) * volume / NKTV2P  # virial, LAMMPS's sign
        virial = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        forces = np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1)
        yield name, atoms, {"energy": pe, "forces": forces, "stress": -virial / atoms.get_volume()}


def lammps_cases():
    """Every kind x preset x ranks; the slice: each kind in both presets, one on
    1 rank and the other on 2 (a run of 32 atoms costs ~1 s)."""
    in_slice = {("tensor_map_weights", "default", 1), ("tensor_map_weights", "turbo", 2),
                ("sphericart", "default", 1), ("sphericart", "turbo", 2),
                ("long_range", "turbo", 1), ("long_range", "default", 2),
                ("variants_only", "default", 2), ("variants_only", "turbo", 1)}
    for kind in KIND_NAMES:
        for preset in PRESETS:
            for ranks in (1, 2):
                marks = () if (kind, preset, ranks) in in_slice else (pytest.mark.matrix,)
                yield pytest.param(kind, preset, ranks, marks=marks,
                                   id=f"{kind}-{preset}-np{ranks}")


@pytest.mark.parametrize("model_kind, preset, ranks", list(lammps_cases()), indirect=["model_kind"])
def test_lammps(tmp_path, model_kind, preset, ranks):
    """pair_style mlipdrive, a frame and 10 MD steps == metatomic_ase, or refused."""
    atoms = copper_aluminium(repeat=2, rattle=0.1, strain=0.03)
    write_cual_frame(tmp_path / "frame.data", atoms)
    result = run_lmp(tmp_path, lammps_script(model_kind, preset), ranks, check=False)
    refusal = model_kind.refusal("lammps", preset, ranks)
    if refusal is not None:
        assert result.returncode != 0, f"{model_kind.name} ran, expected a refusal ({refusal})"
        assert refusal in result.output, result.output[-3000:]
        return
    assert result.returncode == 0, result.output[-6000:]
    frames = list(lammps_frames(tmp_path))
    assert [name for name, _, _ in frames] == ["start", "after_md"]
    for name, frame_atoms, ours in frames:
        theirs = reference_results(model_kind, frame_atoms)
        assert_equal(model_kind, preset, ours, theirs, len(frame_atoms), f"lammps np{ranks} {name}")


# ----------------------------------------------------------------------- i-PI

IPI_SIMULATION = dict(steps=5, temperature_k=300.0, timestep_fs=1.0, forces=True, ensemble="nve")


@pytest.fixture(scope="module")
def ipi_references(tmp_path_factory):
    """i-PI with its own metatomic driver, once per kind."""
    cache = {}

    def get(kind: ModelKind):
        if kind.name not in cache:
            params = ",".join(f"energy_variant={v}" for v in (kind.variants or {}).values())
            directory = tmp_path_factory.mktemp(f"ipi-reference-{kind.name}")
            with family_clients(kind.family):
                cache[kind.name] = run_simulation(
                    directory, copper_aluminium(repeat=2), Simulation(**IPI_SIMULATION),
                    kind.family.path, ["reference"], params=params,
                )
        return cache[kind.name]

    return get


def write_cual_frame(path, atoms):
    """A LAMMPS data file of a CuAl structure, types 1 (Cu) and 2 (Al)."""
    cell, positions = lower_triangular(atoms.cell.array, atoms.positions)
    write_data(path, cell, positions, [1 if z == 29 else 2 for z in atoms.numbers], MASSES)


def ipi_cases():
    in_slice = {("tensor_map_weights", "default"), ("tensor_map_weights", "turbo")}
    for kind in KIND_NAMES:
        for preset in PRESETS:
            marks = () if (kind, preset) in in_slice else (pytest.mark.matrix,)
            yield pytest.param(kind, preset, marks=marks, id=f"{kind}-{preset}")


@pytest.mark.parametrize("model_kind, preset", list(ipi_cases()), indirect=["model_kind"])
def test_ipi(tmp_path, model_kind, preset, ipi_references):
    """`mlipdrive ipi` against i-PI's own metatomic driver (5 NVE steps), or refused."""
    structure = copper_aluminium(repeat=2)
    simulation = Simulation(**IPI_SIMULATION)
    extra = ["--settings", preset]
    for key, value in model_kind.settings.items():
        extra += [f"--{key.replace('_', '-')}", value]
    refusal = model_kind.refusal("ipi", preset)
    with family_clients(model_kind.family):
        if refusal is not None:
            with pytest.raises(AssertionError) as raised:
                run_simulation(tmp_path, structure, simulation, model_kind.family.path,
                               ["mlipdrive"], extra=extra, timeout=120)
            assert refusal in str(raised.value), str(raised.value)[-3000:]
            return
        ours = run_simulation(tmp_path, structure, simulation, model_kind.family.path,
                              ["mlipdrive"], extra=extra)
    found = compare_runs(ours, ipi_references(model_kind), model_kind.tolerances(preset),
                         structure, simulation)
    report(f"{model_kind.name} {preset}", found)


# ------------------------------------------------- energies per structure only

NO_PER_ATOM = "output per structure only (sample_kind 'system')"


def test_per_structure_energy_refuses_per_atom_energies():
    """GAP gives its energy per structure only: per-atom energies are refused with
    the cause (before: the model failed inside, "inputs to 'add' should have the
    same samples")."""
    from model_kinds import GAP

    potential = mlipdrive.load(GAP.path, extensions=GAP.extensions)
    atoms = copper_aluminium(repeat=2)
    args = (atoms.positions, atoms.numbers, atoms.cell.array, True)
    assert np.isfinite(potential.compute(*args).energy)
    with pytest.raises(mlipdrive.potential.InvalidInput, match=re.escape(NO_PER_ATOM)):
        potential.compute(*args, per_atom=True)
    atoms.calc = MLIPCalculator(potential)
    with pytest.raises(mlipdrive.potential.InvalidInput, match=re.escape(NO_PER_ATOM)):
        atoms.get_potential_energies()


def export_per_structure_lj(path: pathlib.Path) -> pathlib.Path:
    """The Cu/Al LJ declaring its energy per structure only."""
    from lj_model import LennardJones

    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="system")},
        atomic_types=[13, 29], interaction_range=5.0, length_unit="angstrom",
        supported_devices=["cpu"], dtype="float64",
    )
    metadata = ModelMetadata(name="per-structure-lj", description="LJ, energy per structure")
    module = LennardJones(2.338, 0.409, 5.0, True, False).eval()
    return save_without_extensions(AtomisticModel(module, metadata, capabilities), path)


def test_lammps_per_structure_energy_refuses_pe_atom(tmp_path):
    """compute pe/atom with a model whose energy is per structure only: refused
    with the cause (the model would otherwise be asked for what it does not declare)."""
    path = export_per_structure_lj(tmp_path / "per-structure.pt")
    write_cual_frame(tmp_path / "frame.data", copper_aluminium(repeat=2))
    script = "\n".join([
        "units metal", "boundary p p p", "atom_style atomic", "read_data frame.data",
        f"pair_style mlipdrive {path}", "pair_coeff * * Cu Al",
        "compute pe all pe/atom", "compute total all reduce sum c_pe",
        "thermo_style custom step pe c_total", "run 0",
    ])
    result = run_lmp(tmp_path, script, 1, check=False)
    assert result.returncode != 0 and NO_PER_ATOM in result.output, result.output[-3000:]


@pytest.mark.parametrize("settings", ["settings turbo", "dtype float32"])
def test_lammps_tensor_map_weights_refused_at_load(tmp_path, settings):
    """The dtype rule in the plugin: refused when pair_style loads the model, with
    the same message as Python (before: the first step failed with "expected m1
    and m2 to have the same dtype" and a hint about atoms too close). The model is
    the LJ with a TensorMap factor (GAP itself is refused for its neighbours)."""
    path = export_scaled(tmp_path / "scaled.pt", in_dict=False)
    write_cual_frame(tmp_path / "frame.data", copper_aluminium(repeat=2))
    script = "\n".join([
        "units metal", "boundary p p p", "atom_style atomic", "read_data frame.data",
        f"pair_style mlipdrive {path} {settings}", "pair_coeff * * Cu Al", "run 0",
    ])
    result = run_lmp(tmp_path, script, 1, check=False)
    assert result.returncode != 0, result.output[-3000:]
    assert DTYPE_REFUSAL in result.output and "TensorMapScaledLJ" in result.output, (
        result.output[-3000:]
    )
    # refused at load, before any step
    assert "Step" not in result.output


# ------------------------------------------------- long-range terms, split layouts


def _pet_lr_path() -> pathlib.Path:
    assert PET_LR.path.is_file(), f"{PET_LR.path} is missing: run models/pet_lr/train.sh"
    return PET_LR.path


def test_long_range_modules_are_found():
    """The rule that split layouts apply: the long-range PET's torch-pme
    calculators are found (also after the float32 conversion), no shipped family
    has any, and a decomposition refuses the model with the cause (before: it
    failed in torch-pme, "linalg.inv ... singular", or gave another energy)."""
    from mpi4py import MPI

    from mlipdrive.decomposition import DistributedPotential
    from mlipdrive.loading import long_range_modules
    from model_families import MODEL_FAMILIES

    for family in MODEL_FAMILIES.values():
        assert long_range_modules(load_model(family.path, family.extensions)) == [], family.name
    for preset in PRESETS:
        potential = mlipdrive.load(_pet_lr_path(), settings=preset)
        found = long_range_modules(potential.model)
        assert "torchpme.calculators.p3m.P3MCalculator" in found, found
        with pytest.raises(mlipdrive.potential.InvalidInput) as raised:
            DistributedPotential(potential, MPI.COMM_SELF, decompose_serial=True)
        assert LONG_RANGE_SPLIT in str(raised.value)
        assert "Run it on one MPI rank" in str(raised.value)


def test_lammps_mode_ghosts_refuses_long_range(tmp_path):
    """'mode ghosts' on one rank hands the model the local atoms and ghosts with
    no cell: the long-range PET would run its non-periodic Coulomb sum there and
    give another energy without an error. Refused at setup, with the cause."""
    write_cual_frame(tmp_path / "frame.data", copper_aluminium(repeat=2))
    script = "\n".join([
        "units metal", "boundary p p p", "atom_style atomic", "read_data frame.data",
        f"pair_style mlipdrive {_pet_lr_path()} mode ghosts", "pair_coeff * * Cu Al",
        "run 0",
    ])
    result = run_lmp(tmp_path, script, 1, check=False)
    assert result.returncode != 0, result.output[-3000:]
    assert LONG_RANGE_SPLIT in result.output and "Remove 'mode ghosts'" in result.output, (
        result.output[-3000:]
    )


def test_ipi_two_ranks_refuse_long_range(tmp_path):
    """`mpirun -np 2 mlipdrive ipi` with the long-range PET: refused once, with
    the cause, before it connects (before: it connected, failed in torch-pme and
    exited 6); i-PI goes on waiting for a client and stops on Ctrl-C."""
    from ipi_testing import (Processes, client_command, ipi_command, remove_unix_socket,
                             unique_address, wait_for_unix_socket, write_input)
    from mlipdrive.ipi import EXIT_USAGE

    ase.io.write(tmp_path / "init.xyz", copper_aluminium(repeat=2), format="extxyz")
    name = unique_address("lr")
    write_input(tmp_path, Simulation(steps=5), unix=name)
    try:
        with Processes(tmp_path) as processes:
            server = processes.start(ipi_command(), "ipi")
            wait_for_unix_socket(name, server)
            client = processes.start(client_command("mpi", _pet_lr_path(), unix=name), "client")
            code = processes.wait(client, 120)
            log = processes.log(client)
            assert server.poll() is None, processes.log(server)
            processes.kill(server, signal.SIGINT)
            assert processes.wait(server, 30) is not None
    finally:
        remove_unix_socket(name)
    assert code == EXIT_USAGE, log
    assert log.count(LONG_RANGE_SPLIT) == 1, log
    assert "Run it on one MPI rank" in log


def _in_pair_order(atoms: ase.Atoms, grouped: bool):
    """(energy, forces) of the long-range PET through metatomic's own model call,
    its pairs from vesin in vesin's order or grouped by first atom (tests/ordered_pairs.py)."""
    from metatomic.torch import load_atomistic_model
    from ordered_pairs import OrderedEvaluation

    evaluation = OrderedEvaluation(load_atomistic_model(str(_pet_lr_path())), atoms)
    order = None
    if grouped:
        order = [np.argsort(pairs[:, 0], kind="stable") for pairs in evaluation.pairs]
    energy, _, forces = evaluation.evaluate(pair_orders=order)
    return energy, forces


def test_long_range_python_path_equals_the_model_in_vesins_order():
    """What the long-range PET's expected failures leave checked in Python:
    mlipdrive's whole-structure path equals the model called by metatomic on
    vesin's pairs in vesin's order, which it hands the model, and pairs grouped
    by first atom give another answer (the metatrain bug of
    model_kinds.PAIR_ORDER_BUG; LAMMPS hands it yet another order)."""
    atoms = copper_aluminium(repeat=2, rattle=0.1, strain=0.03)
    ours = mlipdrive.load(_pet_lr_path()).compute(
        atoms.positions, atoms.numbers, atoms.cell.array, True)
    energy, forces = _in_pair_order(atoms, grouped=False)
    assert abs(ours.energy - energy) / len(atoms) < 1e-10
    assert np.abs(ours.forces - forces).max() < 1e-10
    assert np.abs(forces - _in_pair_order(atoms, grouped=True)[1]).max() > 1e-3
