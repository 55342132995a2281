"""``mlipdrive.load``: load an exported metatomic model (metatomic's checks, errors that
name the fix), apply the inference settings and wrap it in a :class:`Potential`."""

import os
import pathlib
import warnings
import zipfile
import zlib
from typing import List, Optional

import torch
from metatomic.torch import AtomisticModel, ModelCapabilities, load_atomistic_model
from metatomic.torch import pick_device

from .extensions import import_extension_packages
from .messages import loading_message, output_message
from .potential import TORCH_DTYPES, Potential
from .settings import InferenceSettings, SettingsLike, parse_fusion_strategy, resolve, torch_threads
from .uncertainty import UncertaintyWarning
from .units import unit_system


class ModelLoadError(RuntimeError):
    """The model file could not be loaded; the message says why and what to do."""


def load_model(path, extensions=None) -> AtomisticModel:
    """Check and load ``path`` with metatomic, with errors that name the fix."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise ModelLoadError(loading_message("model_is_directory", path=str(path)))
    if not path.is_file():
        raise ModelLoadError(loading_message("model_missing", path=str(path)))
    damaged = damaged_record(path)
    if damaged is not None:
        raise ModelLoadError(loading_message("model_damaged", path=str(path), record=damaged))
    if extensions is not None and not os.path.isdir(extensions):
        raise ModelLoadError(
            loading_message("extensions_directory_missing", directory=str(extensions))
        )
    try:
        model = load_atomistic_model(str(path), extensions_directory=extensions)
    except (RuntimeError, ValueError) as error:
        text = str(error)
        reason = text.splitlines()[0] if text else type(error).__name__
        name = "extensions_not_loaded"
        if "extension" not in text.lower() and "Unknown type name" not in text:
            name = "not_loadable"
        raise ModelLoadError(loading_message(name, path=str(path), reason=reason)) from error
    if extensions is not None:
        import_extension_packages(extensions)
    return model


def damaged_record(path) -> Optional[str]:
    """The first record of the zip archive ``path`` whose bytes fail their CRC-32
    (what torch's C++ reader, and so LAMMPS, refuses; Python's torch.jit.load
    does not check it); None if all pass or if ``path`` is no zip archive at all
    (metatomic's loader says what it is then)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return None
    with archive:
        for info in archive.infolist():
            try:
                with archive.open(info) as record:
                    while record.read(1 << 24):
                        pass
            except (zipfile.BadZipFile, EOFError, zlib.error):
                return info.filename
    return None


def choose_device(model: AtomisticModel, requested: str) -> torch.device:
    """The device to run on: ``requested`` if the model and the machine allow it."""
    supported = model.capabilities().supported_devices
    try:
        return torch.device(pick_device(supported, requested))
    except (RuntimeError, ValueError) as error:
        # torch's errors carry the C++ frames after their first line
        reason = str(error).split("\nException raised from", 1)[0].strip()
        raise ValueError(
            f"cannot run this model on device '{requested}': {reason}; the model "
            f"supports {list(supported)}"
        ) from None


def apply_settings(
    model: AtomisticModel, settings: InferenceSettings, device: torch.device
) -> AtomisticModel:
    """Return the model ready to run with ``settings`` on ``device``.

    Global torch switches (threads, graph executor, fusion, TF32) are process-wide:
    the last loaded model wins. Threads follow :func:`torch_threads` for one rank;
    :class:`~mlipdrive.decomposition.DistributedPotential` shares the cores of a
    node between its ranks.
    """
    torch.set_num_threads(torch_threads(settings.threads))
    torch._C._set_graph_executor_optimize(settings.graph_optimize)
    strategy = parse_fusion_strategy(settings.fusion_strategy)
    if strategy is not None:
        torch.jit.set_fusion_strategy(strategy)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = settings.tf32
        torch.backends.cudnn.allow_tf32 = settings.tf32

    model = with_dtype(model, settings.dtype)
    return model.to(device)


def setting_notes(settings: InferenceSettings, device: torch.device) -> List[str]:
    """What the settings ask for but cannot do on ``device`` (shown by ``mlipdrive
    info``; the LAMMPS plugin prints the same notes)."""
    notes = []
    if settings.tf32 and device.type != "cuda":
        notes.append("tf32: no effect on CPU")
    return notes


def with_dtype(model: AtomisticModel, dtype: str) -> AtomisticModel:
    """The model converted to ``dtype``, re-wrapped so metatomic's dtype check passes.

    The wrapper must stay an ``AtomisticModel`` built from the loaded one: it carries
    the neighbour-list requests of the inner module.
    """
    capabilities = model.capabilities()
    if dtype == "model" or dtype == capabilities.dtype:
        return model
    modules = tensor_map_weights(model)
    if modules:
        raise ModelLoadError(loading_message(
            "dtype_unreachable_weights", model=model.metadata().name or "model", dtype=dtype,
            modules=", ".join(modules), exported=capabilities.dtype,
        ))
    converted = AtomisticModel(
        model.to(TORCH_DTYPES[dtype]), model.metadata(), _replace_dtype(capabilities, dtype)
    )
    return converted.eval()


#: metatensor's TorchScript classes that hold values (a TensorMap's blocks)
TENSOR_MAP_CLASSES = ("__torch__.torch.classes.metatensor.TensorMap",
                      "__torch__.torch.classes.metatensor.TensorBlock")


def tensor_map_weights(model: AtomisticModel) -> List[str]:
    """The classes of the model's modules that hold a TensorMap or TensorBlock as an
    attribute of their own (also ``Optional``); empty when there is none.

    A dtype conversion (``Module.to`` here, ``convert_dtype`` in the plugin) reaches
    parameters and buffers only. Such attributes are weights it leaves in the
    exported dtype, and the first evaluation fails ("expected m1 and m2 to have the
    same dtype"): metatrain's GAP keeps its kernel weights and sparse points so.
    Converting them would not help: its kernel weights (up to 4e5) cancel, and in
    float32 the energy moved by 0.02 eV/atom (models/gap/MODEL_CARD.md). TensorMaps
    inside a ``Dict`` attribute (metatrain's composition and scaler tables) are not
    counted: those modules move them to the input's dtype at every call.
    The plugin applies the same rule to each module's attribute types.
    """
    found = []
    for _, module in model.module.named_modules():
        kind = module._c._type()
        for attribute in kind.containedTypes():
            # torch spells Optional[T] "T?" (Type::str in C++ too)
            if attribute.str().removesuffix("?") in TENSOR_MAP_CLASSES:
                name = kind.qualified_name().removeprefix("__torch__.")
                if name not in found:
                    found.append(name)
                break
    return found


#: the TorchScript class-name prefixes of long-range (k-space) modules: torch-pme's
#: calculators and potentials, which metatrain's ``long_range`` featurizer uses
LONG_RANGE_MODULE_PREFIXES = ("__torch__.torchpme.calculators.",)


def long_range_modules(model: AtomisticModel) -> List[str]:
    """The classes of the model's long-range modules (torch-pme calculators:
    Ewald, PME, P3M), empty when there is none.

    Such a model needs the whole periodic structure: its k-space sum cannot be
    evaluated on a spatial domain (local atoms and a halo of ghosts), whatever
    its declared interaction range, which covers only its short-range part
    (metatrain's PET with ``long_range`` declares layers x cutoff). Split layouts
    refuse it. The plugin applies the same rule to each module's class.
    """
    found = []
    for _, module in model.module.named_modules():
        name = module._c._type().qualified_name()
        if name.startswith(LONG_RANGE_MODULE_PREFIXES):
            name = name.removeprefix("__torch__.")
            if name not in found:
                found.append(name)
    return found


def _replace_dtype(capabilities: ModelCapabilities, dtype: str) -> ModelCapabilities:
    return ModelCapabilities(
        outputs=capabilities.outputs,
        atomic_types=capabilities.atomic_types,
        interaction_range=capabilities.interaction_range,
        length_unit=capabilities.length_unit,
        supported_devices=capabilities.supported_devices,
        dtype=dtype,
    )


def load(
    path,
    *,
    device: str = "cpu",
    settings: SettingsLike = "default",
    extensions=None,
    units: str = "metal",
) -> Potential:
    """Load the exported metatomic model at ``path`` (with metatomic's checks).

    :param device: 'cpu', 'cuda' or 'cuda:N'
    :param settings: a preset name ('default', 'turbo'), a mapping of settings
        (optionally with a 'preset' key) or an :class:`InferenceSettings`
    :param extensions: directory of the model's TorchScript extensions, if any
    :param units: the caller's unit system: 'metal' (Å, eV; also 'ase'), 'real',
        'electron' (Bohr, Hartree; also 'atomic'), 'si'
    """
    settings = resolve(settings)
    units_ = unit_system(units)
    model = load_model(path, extensions)
    exported_dtype = model.capabilities().dtype
    torch_device = choose_device(model, device)
    model = apply_settings(model, settings, torch_device)
    potential = Potential(model, torch_device, settings, units_)
    potential.exported_dtype = exported_dtype
    potential.notes = setting_notes(settings, torch_device) + list(potential.outputs.notes)
    _warn_unchecked_stop(potential)
    return potential


def _warn_unchecked_stop(potential: Potential):
    """``uncertainty_action stop`` with a model that has no uncertainty to check:
    a note (:attr:`Potential.notes`) that is also said once, as a warning."""
    name = potential.model.metadata().name or "model"
    message = output_message("uncertainty_stop_unchecked", model=name)
    if message in potential.notes:
        warnings.warn(message, UncertaintyWarning, stacklevel=3)
