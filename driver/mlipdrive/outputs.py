"""Which of a model's outputs an evaluation uses: variants, the energy
uncertainty and the non-conservative force and stress heads.

metatomic names the variants of an output ``NAME/VARIANT`` (``energy/pbe``); the
settings ``variant`` and ``variant/<output>`` choose them as metatomic's
``pair_style metatomic`` does: ``variant/energy`` falls back on ``variant``, the
other outputs fall back on the energy's choice, and ``off`` asks for the default
output (no variant). The two tables, :data:`OUTPUT_NAMES` and
:data:`VARIANT_CHAINS`, and the messages of :data:`OUTPUT_MESSAGES` are generated
into the LAMMPS plugin (``generate_python_rules.py``), whose
``mlipdrive_outputs.cpp`` follows :func:`choose_outputs` step by step.
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .messages import output_message
from .settings import VARIANT_OUTPUTS, field_name

#: metatomic's current name of each output, then the older names it still knows
OUTPUT_NAMES = {
    "energy": ("energy",),
    "energy_uncertainty": ("energy_uncertainty",),
    "non_conservative_forces": ("non_conservative_force", "non_conservative_forces"),
    "non_conservative_stress": ("non_conservative_stress",),
    "energy_ensemble": ("energy_ensemble",),
}


class OutputChoiceError(ValueError):
    """The settings ask for an output (or a variant of it) that the model lacks."""


@dataclasses.dataclass(frozen=True)
class OutputChoice:
    """The model outputs of one evaluation: their keys, None when unused."""

    energy: str
    #: per-atom energy uncertainty, checked against the threshold
    uncertainty: Optional[str] = None
    non_conservative_forces: Optional[str] = None
    non_conservative_stress: Optional[str] = None
    #: what the settings asked for but this model cannot give, one line each
    notes: Tuple[str, ...] = ()


def _variant_chain(output: str) -> Tuple[str, ...]:
    own = "variant/" + output
    return (own, "variant") if output == "energy" else (own, *_variant_chain("energy"))


#: metatomic's fall-back rule: the settings that choose each output's variant, in
#: order; the first one set ('' is unset) decides ('variant/energy', then
#: 'variant'; any other output: its own, then the energy's chain)
VARIANT_CHAINS = {output: _variant_chain(output) for output in VARIANT_OUTPUTS}


def requested_variants(settings) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """output -> (variant or None for the default output, the setting that chose it
    or None when nothing was asked), by :data:`VARIANT_CHAINS`."""
    chosen = {}
    for output, chain in VARIANT_CHAINS.items():
        chosen[output] = (None, None)
        for spelling in chain:
            text = getattr(settings, field_name(spelling))
            if text != "":
                chosen[output] = (None if text == "off" else text, spelling)
                break
    return chosen


def variants_of(outputs: Mapping, output: str) -> List[Optional[str]]:
    """The variants of ``output`` (any of its names) the model has; None stands for
    the default output (no variant), listed first."""
    found: List[Optional[str]] = []
    for name in OUTPUT_NAMES.get(output, (output,)):
        for key in outputs.keys():
            base, _, variant = key.partition("/")
            if base == name and (variant or None) not in found:
                found.append(variant or None)
    return sorted(found, key=lambda v: (v is not None, v or ""))


def describe_variants(outputs: Mapping, output: str) -> str:
    """'default, 'pbe' (PBE0 energy)' for messages and ``mlipdrive info``."""
    words = []
    for variant in variants_of(outputs, output):
        key = _key(outputs, output, variant)
        description = getattr(outputs[key], "description", "")
        name = "default" if variant is None else repr(variant)
        words.append(f"{name} ({description})" if description else name)
    return ", ".join(words)


def pick_output(
    outputs: Mapping, output: str, variant: Optional[str], setting: Optional[str], model: str
) -> Optional[str]:
    """The key of ``output`` with ``variant`` in ``outputs``; None if the model has
    no such output at all; :class:`OutputChoiceError` if only other variants exist."""
    key = _key(outputs, output, variant)
    if key is not None:
        return key
    if not variants_of(outputs, output):
        return None
    values = dict(model=model, output=output, variants=describe_variants(outputs, output))
    if variant is None:
        raise OutputChoiceError(output_message("no_default_output", **values))
    raise OutputChoiceError(
        output_message("variant_missing", variant=variant, setting=setting or "variant", **values)
    )


def choose_outputs(outputs: Mapping, settings, model: str = "model") -> OutputChoice:
    """The outputs of the model (its capabilities' ``outputs``) that ``settings``
    ask for; :class:`OutputChoiceError` naming the fix when the model lacks one."""
    variants = requested_variants(settings)
    energy = pick_output(outputs, "energy", *variants["energy"], model)
    if energy is None:
        raise OutputChoiceError(output_message(
            "no_energy", model=model, outputs=", ".join(outputs.keys())
        ))
    notes: List[str] = []
    uncertainty = None
    if settings.uncertainty_threshold > 0:
        uncertainty = pick_output(outputs, "energy_uncertainty", *variants["energy_uncertainty"], model)
        if uncertainty is None and settings.uncertainty_action == "stop":
            notes.append(output_message("uncertainty_stop_unchecked", model=model))
        if uncertainty is not None and outputs[uncertainty].sample_kind != "atom":
            notes.append(output_message("uncertainty_not_per_atom", output=uncertainty))
            uncertainty = None
    forces, stress = _heads(outputs, settings, variants, model, notes)
    return OutputChoice(energy, uncertainty, forces, stress, tuple(notes))


def _heads(outputs: Mapping, settings, variants, model: str, notes: List[str]):
    """(forces key, stress key) of the non-conservative outputs the settings take
    from the model (:data:`mlipdrive.settings.NON_CONSERVATIVE_HEADS`), None where unused."""
    forces = stress = None
    listed = ", ".join(outputs.keys())
    if settings.forces_from_head:
        forces = pick_output(outputs, "non_conservative_forces", *variants["non_conservative_forces"], model)
        if forces is None or outputs[forces].sample_kind != "atom":
            raise OutputChoiceError(output_message(
                "no_non_conservative_forces", model=model, outputs=listed
            ))
    if settings.stress_from_head:
        stress = pick_output(outputs, "non_conservative_stress", *variants["non_conservative_stress"], model)
        if stress is None and not settings.forces_from_head:
            raise OutputChoiceError(output_message(
                "no_non_conservative_stress_head", model=model, outputs=listed
            ))
        if stress is None:
            notes.append(output_message("no_non_conservative_stress", model=model))
    return forces, stress


def ensemble_output(outputs: Mapping, settings, model: str = "model") -> str:
    """The key of the energy ensemble (i-PI's ``energy_ensemble``), with the
    energy uncertainty's variant as i-PI's driver takes it."""
    variant = requested_variants(settings)["energy_uncertainty"]
    key = pick_output(outputs, "energy_ensemble", *variant, model)
    if key is None:
        raise OutputChoiceError(output_message(
            "no_energy_ensemble", model=model, outputs=", ".join(outputs.keys())
        ))
    return key


def _key(outputs: Mapping, output: str, variant: Optional[str]) -> Optional[str]:
    """The key of ``output``/``variant`` under the first of its names the model has."""
    names: Sequence[str] = OUTPUT_NAMES.get(output, (output,))
    for name in names:
        key = name if variant is None else f"{name}/{variant}"
        if key in outputs:
            return key
    return None
