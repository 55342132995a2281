"""Messages about loading a model, choosing its outputs and evaluating it, shared
by every engine.

The Python driver formats them with ``str.format``; the LAMMPS plugin gets one C++
function per message, generated from this table at build time
(``lammps_plugin/generate_python_rules.py``), so both say the same thing.
"""

#: name -> template; the placeholders are the arguments of the C++ function
LOADING_MESSAGES = {
    "model_missing": (
        "model file '{path}' does not exist; give the path of an exported metatomic "
        "model (.pt), absolute or relative to the folder the command runs in (for "
        "LAMMPS, the folder lmp runs in)"
    ),
    "model_is_directory": (
        "model '{path}' is a directory, not a model file; give the exported metatomic "
        "model (.pt) inside it, e.g. models/mace/mace-cual.pt"
    ),
    "model_damaged": (
        "model file '{path}' is damaged: its record '{record}' fails its CRC-32 check "
        "(the bytes differ from those written at export; LAMMPS's loader refuses it "
        "too); copy the file again from where it was exported, or export it again"
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
    # with_dtype in loading.py (Python) and convert_dtype (C++): the rule is
    # loading.tensor_map_weights
    "dtype_unreachable_weights": (
        "model '{model}' cannot run in {dtype}: its weights in metatensor TensorMaps "
        "(attributes of {modules}) stay {exported}, since a dtype conversion reaches "
        "parameters and buffers only; run it as exported: dtype model (or {exported}), "
        "not the 'turbo' preset's float32"
    ),
    # the LAMMPS plugin only: the Python engines run such a model (vesin is not needed)
    "no_neighbor_lists": (
        "model '{model}' asks for no neighbour list: it finds the neighbours itself "
        "from the positions and the cell (as metatrain's GAP does with featomic), and "
        "pair_style mlipdrive builds the model's input from LAMMPS's neighbour list; "
        "run this model through the Python engines (ASE calculator, mlipdrive ipi)"
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
        "'non_conservative on' (or 'forces') needs a per-atom 'non_conservative_force' "
        "output, and model '{model}' has none (it has {outputs}); turn non_conservative off"
    ),
    "no_non_conservative_stress_head": (
        "'non_conservative stress' needs a 'non_conservative_stress' output, and model "
        "'{model}' has none (it has {outputs}); turn non_conservative off"
    ),
    "no_non_conservative_stress": (
        "non_conservative: model '{model}' has no 'non_conservative_stress' output, "
        "so there is no virial or stress (no pressure, no NPT)"
    ),
    "no_per_atom_energy": (
        "model '{model}' gives its '{output}' output per structure only (sample_kind "
        "'system'), so there are no per-atom energies to give (ASE "
        "get_potential_energies, i-PI --per-atom-energies, LAMMPS compute pe/atom); "
        "ask for the total energy only"
    ),
    "no_energy_ensemble": (
        "model '{model}' has no 'energy_ensemble' output (it has {outputs}); an "
        "ensemble needs a model that has one (e.g. metatrain's LLPR wrapper)"
    ),
    "uncertainty_stop_unchecked": (
        "uncertainty_action 'stop', but model '{model}' has no 'energy_uncertainty' "
        "output: nothing is checked, and nothing will stop the run"
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


#: name -> template: an evaluation that failed for a reason of the model's
EVALUATION_MESSAGES = {
    "output_shape": (
        "the model's '{output}' output has values of shape {actual}, expected "
        "{expected} ({meaning}, as metatomic defines it); the model does not follow "
        "metatomic's definition of this output: {advice}"
    ),
    "split_evaluation_failed": (
        "{error}\nThis failed on one spatial domain of the structure (a rank's atoms "
        "and a halo of ghost atoms, not periodic across the cuts): the model may not "
        "support domain decomposition, e.g. long-range terms (Ewald, PME, P3M) that "
        "need the whole periodic structure even when the model declares a finite "
        "interaction range. {one_rank}"
    ),
    "split_long_range": (
        "model '{model}' has long-range terms ({modules}) that need the whole "
        "periodic structure: they cannot be evaluated on spatial domains (a rank's "
        "atoms and a halo of ghost atoms), whatever the declared interaction range "
        "({range}, which covers the short-range part only), so {where} would give a "
        "wrong energy or fail. {one_rank}"
    ),
    # what to do about a non-conservative head or an uncertainty of the wrong shape
    "head_advice": "turn non_conservative off, or fix the model's output and export it again",
    "uncertainty_advice": "turn the check off (uncertainty_threshold off), or fix the model's output",
}


def evaluation_message(name: str, **values) -> str:
    """The message of :data:`EVALUATION_MESSAGES` called ``name``, filled."""
    return EVALUATION_MESSAGES[name].format(**values)
