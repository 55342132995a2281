"""Messages about loading a model, shared by every engine.

The Python driver formats them with ``str.format``; the LAMMPS plugin gets one C++
function per message, generated from this table at build time
(``lammps_plugin/generate_python_rules.py``), so both say the same thing.
"""

#: name -> template; the placeholders are the arguments of the C++ function
LOADING_MESSAGES = {
    "model_missing": (
        "model file '{path}' does not exist; give the path of an exported metatomic "
        "model (.pt), e.g. models/mace/mace-cual.pt"
    ),
    "extensions_directory_missing": (
        "extensions directory '{directory}' does not exist; give the folder that holds "
        "the model's TorchScript extensions (mtt export writes one)"
    ),
    "extensions_not_loaded": (
        "model '{path}' needs TorchScript extensions that are not loaded: {reason}\n"
        "Give the extensions directory (Python: extensions=DIR, CLI: --extensions DIR, "
        "LAMMPS: 'extensions DIR' in pair_style); set METATOMIC_DEBUG_EXTENSIONS_LOADING=1 "
        "to see every path tried"
    ),
    "not_loadable": (
        "'{path}' is not a loadable metatomic model ({reason}); export it again with "
        "metatomic (AtomisticModel.save or mtt export)"
    ),
    "no_energy_output": (
        "model '{path}' has no 'energy' output (it has {outputs}); mlipdrive runs "
        "energy models"
    ),
}


def loading_message(name: str, **values: str) -> str:
    """The message called ``name`` with its placeholders filled."""
    return LOADING_MESSAGES[name].format(**values)
