"""``mlipdrive.load``: from a model file to a ready :class:`Potential`."""

from .model_loading import apply_settings, choose_device, load_model, setting_notes
from .potential import Potential
from .settings import SettingsLike, resolve
from .units import unit_system


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
