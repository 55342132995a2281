"""``mlipdrive.load``: load an exported metatomic model (metatomic's checks, errors that
name the fix), apply the inference settings and wrap it in a :class:`Potential`."""

import os
import pathlib
from typing import List

import torch
from metatomic.torch import AtomisticModel, ModelCapabilities, load_atomistic_model
from metatomic.torch import pick_device

from .extensions import import_extension_packages
from .messages import loading_message
from .potential import TORCH_DTYPES, Potential
from .settings import InferenceSettings, SettingsLike, parse_fusion_strategy, resolve, torch_threads
from .units import unit_system


class ModelLoadError(RuntimeError):
    """The model file could not be loaded; the message says why and what to do."""


def load_model(path, extensions=None) -> AtomisticModel:
    """Check and load ``path`` with metatomic, with errors that name the fix."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ModelLoadError(loading_message("model_missing", path=str(path)))
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


def choose_device(model: AtomisticModel, requested: str) -> torch.device:
    """The device to run on: ``requested`` if the model and the machine allow it."""
    supported = model.capabilities().supported_devices
    try:
        return torch.device(pick_device(supported, requested))
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"cannot run this model on device '{requested}': {error}; the model "
            f"supports {list(supported)}"
        ) from error


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
    converted = AtomisticModel(
        model.to(TORCH_DTYPES[dtype]), model.metadata(), _replace_dtype(capabilities, dtype)
    )
    return converted.eval()


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
    return potential
