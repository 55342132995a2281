"""Kinds of metatomic models the engines meet beyond the shipped families, one row
each, with what every engine must do with them under each settings preset.

The ``model_kind`` fixture in conftest.py is parametrised over :data:`MODEL_KINDS`;
tests/test_model_kinds.py runs each kind through ASE, LAMMPS (1 and 2 ranks) and
the i-PI client in ``default`` and ``turbo``. Each either equals metatomic's own
ASE calculator within the kind's tolerances or is refused with a message that
names the real cause (:attr:`ModelKind.refused`).

- ``tensor_map_weights``: metatrain's GAP (models/gap), whose kernel weights
  live in metatensor TensorMaps and which calls the featomic-torch extension.
  It finds its neighbours itself (no neighbour-list request) and gives the
  energy per structure only.
- ``sphericart``: the SOAP-BPNN family (models/soap_bpnn), the sphericart-torch
  extension whose autograd formulas live in Python.
- ``long_range``: metatrain's PET with its ``long_range`` featurizer
  (models/pet_lr, torch-pme P3M), which declares a finite interaction range (its
  short-range part) but needs the whole periodic structure: every layout that
  splits the structure into domains (LAMMPS on 2 ranks) refuses it. Where it
  runs it cannot equal metatomic_ase: its outputs depend on the pair order
  (:data:`PAIR_ORDER_BUG`), so those comparisons are expected failures.
- ``variants_only``: an exact Lennard-Jones for Cu/Al with one output,
  ``energy/xyz``, and no plain ``energy`` (exported here, :func:`export_variants_only`).
"""

import dataclasses
import pathlib
from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput, System
from model_families import EXTENSIONS, MODEL_FAMILIES, MODELS, ModelFamily

from structures import FLOAT32_ENERGY_PER_ATOM, FLOAT32_FORCES, SAME_MODEL

# eV/Å³: float32 against float64 for the symmetric stress of the 32- and 108-atom
# CuAl frames (measured: GAP refused, SOAP-BPNN 2e-7, the LJ 3e-7)
FLOAT32_STRESS = 1e-5

# refusals: the preset, and a piece of the message that names the cause
DTYPE_REFUSAL = "cannot run in float32: its weights in metatensor TensorMaps"
NO_DEFAULT_OUTPUT = "has no default 'energy' output, only variants: 'xyz'"
NO_NEIGHBOR_LIST = "asks for no neighbour list"
LONG_RANGE_SPLIT = "has long-range terms (torchpme.calculators."
# metatrain 2026.4.1's LongRangeFeaturizer pairs the neighbour list's (first,
# second) in the list's order with PET's pair distances in its own order (grouped
# by first atom): they match only for a list grouped by first atom, so the model's
# outputs depend on the order of its pairs by ~0.1 eV/atom per-atom energies and
# ~0.2 eV/Å forces (models/pet_lr/MODEL_CARD.md). Every engine hands it another
# order than metatomic_ase does: none can equal it.
PAIR_ORDER_BUG = ("metatrain's long-range PET depends on the order of its pairs "
                  "(models/pet_lr/MODEL_CARD.md)")


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One kind of model, with the family-style row that the engines' comparisons
    read (path, extensions, tolerances) and what each engine must refuse."""

    name: str
    family: ModelFamily
    # settings every engine is given on top of the preset (e.g. the variant)
    settings: Dict[str, str] = dataclasses.field(default_factory=dict)
    # (engine, preset) or (engine, preset, ranks) -> a piece of the refusal's
    # message; engines "ase", "lammps", "ipi"; preset "default" or "turbo"; ranks
    # the MPI ranks (LAMMPS); absent: it must run and equal metatomic_ase
    refused: Dict[tuple, str] = dataclasses.field(default_factory=dict)
    # whether the model gives per-atom energies (GAP: per structure only)
    per_atom_energies: bool = True
    # metatomic_ase's `variants` for the reference
    variants: Optional[Dict[str, str]] = None
    # the package of its extension in the extensions directory (the fixture checks it)
    extension_package: str = ""
    # why it cannot equal metatomic_ase where it runs: an expected failure with the
    # measured differences (empty: it must equal)
    known_difference: str = ""

    def refusal(self, engine: str, preset: str, ranks: int = 1) -> Optional[str]:
        return self.refused.get((engine, preset, ranks), self.refused.get((engine, preset)))

    def tolerances(self, preset: str) -> ModelFamily:
        """The family row to compare with under ``preset``: turbo runs a float64
        model in float32, held to the float32 tolerances of structures.py."""
        if preset != "turbo" or self.family.dtype == "float32":
            return self.family
        return dataclasses.replace(
            self.family, dtype="float32", energy_per_atom=FLOAT32_ENERGY_PER_ATOM,
            forces=FLOAT32_FORCES, stress=FLOAT32_STRESS,
        )


GAP = ModelFamily(
    name="gap",
    path=MODELS / "gap" / "gap-cual.pt",
    extensions=EXTENSIONS,
    dtype="float64",
    interaction_range=4.5,
    energy_per_atom=SAME_MODEL,
    forces=SAME_MODEL,
    stress=SAME_MODEL,
    finite_difference=1e-6,
    finite_difference_stress=1e-6,
)

PET_LR = ModelFamily(
    name="pet_lr",
    path=MODELS / "pet_lr" / "pet-lr-cual.pt",
    extensions=None,
    dtype="float64",
    interaction_range=9.0,
    energy_per_atom=SAME_MODEL,
    forces=SAME_MODEL,
    stress=SAME_MODEL,
    finite_difference=1e-6,
    finite_difference_stress=1e-6,
    rotation_invariant=False,
)

# an exact LJ for Cu/Al (copper-like parameters, models/README.md), small cutoff
VARIANT_SIGMA, VARIANT_EPSILON, VARIANT_CUTOFF = 2.338, 0.409, 5.0


def variants_only_family(path: pathlib.Path) -> ModelFamily:
    return ModelFamily(
        name="variants_only",
        path=path,
        extensions=None,
        dtype="float64",
        interaction_range=VARIANT_CUTOFF,
        energy_per_atom=SAME_MODEL,
        forces=SAME_MODEL,
        stress=SAME_MODEL,
        finite_difference=1e-6,
        finite_difference_stress=1e-6,
    )


class VariantsOnly(torch.nn.Module):
    """Shifted LJ whose only output is the ``energy/xyz`` variant."""

    def __init__(self):
        super().__init__()
        from lj_model import LennardJones

        self.lj = LennardJones(VARIANT_SIGMA, VARIANT_EPSILON, VARIANT_CUTOFF, True, False)

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        results: Dict[str, TensorMap] = {}
        for name, request in outputs.items():
            if name == "energy/xyz":
                results[name] = self.lj(systems, {"energy": request}, selected_atoms)["energy"]
        return results


def export_variants_only(path: pathlib.Path) -> pathlib.Path:
    """Save :class:`VariantsOnly` with metatomic's API (no extension recorded)."""
    capabilities = ModelCapabilities(
        outputs={"energy/xyz": ModelOutput(unit="eV", sample_kind="atom",
                                           description="LJ, the only energy")},
        atomic_types=[13, 29],
        interaction_range=VARIANT_CUTOFF,
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype="float64",
    )
    metadata = ModelMetadata(name="variants-only-lj", description="LJ with only energy/xyz")
    return save_without_extensions(AtomisticModel(VariantsOnly().eval(), metadata, capabilities), path)


def save_without_extensions(model, path: pathlib.Path) -> pathlib.Path:
    """Save an AtomisticModel that needs no TorchScript extension: save records
    every library torch has loaded as one of the model's, and the other kinds'
    (featomic, sphericart) are not this model's."""
    loaded = set(torch.ops.loaded_libraries)
    torch.ops.loaded_libraries.clear()
    try:
        model.save(str(path))
    finally:
        torch.ops.loaded_libraries.update(loaded)
    return path


def model_kinds(variants_only_path: pathlib.Path) -> Dict[str, ModelKind]:
    """Every kind; the variants-only model is exported by the fixture, at ``path``."""
    return {
        "tensor_map_weights": ModelKind(
            name="tensor_map_weights",
            family=GAP,
            extension_package="featomic",
            per_atom_energies=False,
            refused={
                ("ase", "turbo"): DTYPE_REFUSAL,
                ("ipi", "turbo"): DTYPE_REFUSAL,
                # the plugin builds Systems from LAMMPS's neighbour list; GAP
                # (featomic) finds its neighbours itself and asks for none. In
                # turbo the dtype is refused first, when pair_style loads it
                ("lammps", "default"): NO_NEIGHBOR_LIST,
                ("lammps", "turbo"): DTYPE_REFUSAL,
            },
        ),
        "sphericart": ModelKind(name="sphericart", family=MODEL_FAMILIES["soap_bpnn"],
                                extension_package="sphericart"),
        "long_range": ModelKind(
            name="long_range",
            family=PET_LR,
            # its k-space sum needs the whole periodic box; split, it would fail
            # in torch-pme or (all ghosts, no cell) give another energy
            refused={("lammps", "default", 2): LONG_RANGE_SPLIT,
                     ("lammps", "turbo", 2): LONG_RANGE_SPLIT},
            known_difference=PAIR_ORDER_BUG,
        ),
        "variants_only": ModelKind(
            name="variants_only",
            family=variants_only_family(variants_only_path),
            settings={"variant": "xyz"},
            variants={"energy": "xyz"},
        ),
    }


KIND_NAMES = ["tensor_map_weights", "sphericart", "long_range", "variants_only"]
