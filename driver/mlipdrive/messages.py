"""Messages about loading a model and choosing its outputs, shared by every engine.

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


#: name -> template: the model's outputs that the settings ask for (outputs.py),
#: and the energy-uncertainty check (uncertainty.py)
OUTPUT_MESSAGES = {
    "no_energy": (
        "model '{model}' has no 'energy' output (it has {outputs}); mlipdrive runs "
        "energy models"
    ),
    "variant_missing": (
        "model '{model}' has no variant '{variant}' of its '{output}' output (asked for "
        "by the setting '{setting}'); its variants of '{output}': {variants}. Give one "
        "of these, or 'off' for the default output"
    ),
    "no_default_output": (
        "model '{model}' has no default '{output}' output, only variants: {variants}; "
        "choose one with the setting 'variant' (pair_style keyword 'variant NAME', "
        "or 'variant/{output} NAME' for this output alone)"
    ),
    "no_non_conservative_forces": (
        "'non_conservative on' needs a per-atom 'non_conservative_force' output, and "
        "model '{model}' has none (it has {outputs}); turn non_conservative off"
    ),
    "no_non_conservative_stress": (
        "non_conservative: model '{model}' has no 'non_conservative_stress' output, "
        "so there is no virial or stress (no pressure, no NPT)"
    ),
    "no_energy_ensemble": (
        "model '{model}' has no 'energy_ensemble' output (it has {outputs}); an "
        "ensemble needs a model that has one (e.g. metatrain's LLPR wrapper)"
    ),
    "uncertainty_not_per_atom": (
        "uncertainty check off: '{output}' is given per structure only, the check "
        "needs per-atom uncertainties (as metatomic's)"
    ),
    "uncertainty_exceeded": (
        "energy uncertainty above the threshold of {threshold} eV/atom for {count} "
        "atom(s) at {where}; largest: {worst}. The model is extrapolating there: be "
        "careful with these results (retrain with such structures), or change "
        "uncertainty_threshold"
    ),
}


def output_message(name: str, **values) -> str:
    """The message of :data:`OUTPUT_MESSAGES` called ``name``, filled."""
    return OUTPUT_MESSAGES[name].format(**values)
