"""Inference settings: the one table that every engine reads.

Each row of :data:`SETTINGS` is a keyword with its type, its value in each preset,
its unit and a one-line doc. The Python driver, the ASE calculator, the i-PI
client options and the ``pair_style mlipdrive`` keywords all come from this
table; the C++ plugin gets a header generated from it at configure time
(``python -m mlipdrive.settings --cpp-header FILE``).

Presets:

- ``default``: the model as exported, safest.
- ``turbo``: for long rollouts at fixed composition; every change it makes is
  held to numbers by the benchmark harness (``mlipdrive bench``).
"""

import argparse
import dataclasses
import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    type: type
    presets: Dict[str, Any]
    unit: str
    doc: str
    choices: Tuple[Any, ...] = ()
    #: smallest allowed value of a number (every number must also be finite)
    minimum: Optional[float] = None
    #: the spelling of LAMMPS keywords and command-line options when it is not
    #: ``name`` (metatomic's ``variant/energy`` for the field ``variant_energy``)
    keyword: str = ""
    #: words that mean the value 0 for a number ('off' for uncertainty_threshold)
    zero_words: Tuple[str, ...] = ()

    @property
    def spelling(self) -> str:
        """How engines spell it: :attr:`keyword`, else :attr:`name`."""
        return self.keyword or self.name

    @property
    def reads_on_off(self) -> bool:
        """A text setting whose choices hold 'on' and 'off' also takes every on/off
        word (:data:`ON_OFF_WORDS`) and Python's True/False, as 'on'/'off'."""
        return self.type is str and {"on", "off"} <= set(self.choices)


#: the outputs whose variant can be chosen on its own (``variant/<output>``)
VARIANT_OUTPUTS = (
    "energy",
    "energy_uncertainty",
    "non_conservative_forces",
    "non_conservative_stress",
)

SETTINGS = (
    Setting(
        "dtype", str, {"default": "model", "turbo": "float32"}, "",
        "floating point type of the evaluation; 'model' keeps the exported one",
        choices=("model", "float64", "float32"),
    ),
    Setting(
        "threads", int, {"default": 0, "turbo": 0}, "",
        "torch intra-op threads: N > 0 gives N; 0 gives OMP_NUM_THREADS if it is a "
        "positive integer, else max(1, usable cores // MPI ranks on this node), usable "
        "cores being the CPU affinity mask (sched_getaffinity)",
        minimum=0,
    ),
    Setting(
        "graph_optimize", bool, {"default": True, "turbo": False}, "",
        "TorchScript graph-executor optimisation (profiling and fusion)",
    ),
    Setting(
        "fusion_strategy", str, {"default": "", "turbo": ""}, "",
        "TorchScript fusion strategy, e.g. 'STATIC:2,DYNAMIC:10'; '' keeps torch's",
    ),
    Setting(
        "skin", float, {"default": 1.0, "turbo": 1.0}, "angstrom",
        "Verlet skin of the driver's neighbour list (LAMMPS uses its own 'neighbor')",
        minimum=0.0,
    ),
    Setting(
        "verify", bool, {"default": False, "turbo": False}, "",
        "at every step also build the model's input from scratch (no kept neighbour "
        "pairs, representatives or types) and stop with the step and the first "
        "difference if anything the model sees differs: a check of every cache",
    ),
    Setting(
        "check_consistency", bool, {"default": False, "turbo": False}, "",
        "metatomic's consistency checks of inputs and outputs on every call",
    ),
    Setting(
        "fixed_composition", bool, {"default": False, "turbo": True}, "",
        "cache everything that depends only on atom types; a change of types is an error",
    ),
    Setting(
        "atom_energy_sum", bool, {"default": False, "turbo": True}, "",
        "ask for per-atom energies and sum them here, skipping the model's own "
        "reduction (sum_over_samples); ignored where the model has no per-atom energy",
    ),
    Setting(
        "tf32", bool, {"default": False, "turbo": True}, "",
        "allow TF32 matmuls (CUDA only; no effect on CPU)",
    ),
    # ---- which outputs of the model, and how (metatomic's pair_style keywords)
    Setting(
        "variant", str, {"default": "", "turbo": ""}, "",
        "variant of every output used (energy, energy_uncertainty, "
        "non_conservative_forces/stress), as in 'energy/<variant>'; '' or 'off': "
        "the model's default outputs",
    ),
    *(
        Setting(
            f"variant_{output}", str, {"default": "", "turbo": ""}, "",
            f"variant of the {output} output; '' follows "
            + ("'variant'" if output == "energy" else "the energy's variant")
            + ", 'off' takes the default output",
            keyword=f"variant/{output}",
        )
        for output in VARIANT_OUTPUTS
    ),
    Setting(
        "uncertainty_threshold", float, {"default": 0.1, "turbo": 0.1}, "eV",
        "warn (see uncertainty_action) when the model's per-atom energy uncertainty "
        "(output energy_uncertainty) exceeds this, in eV per atom in every engine; "
        "0 or 'off' turns the check off; models without the output: no check",
        minimum=0.0, zero_words=("off",),
    ),
    Setting(
        "uncertainty_action", str, {"default": "warn", "turbo": "warn"}, "",
        "what an uncertainty above the threshold does: 'warn' (the step and the "
        "worst atoms) or 'stop' (an error)",
        choices=("warn", "stop"),
    ),
    Setting(
        "non_conservative", str, {"default": "off", "turbo": "off"}, "",
        "'on': forces and stress from the model's non_conservative_forces/stress "
        "outputs instead of the energy's gradients (no backward pass; not "
        "energy-conserving: NVE drifts, use a thermostat); 'forces' or 'stress': that "
        "one from its output, the other by autograd (metatomic's meaning); any on/off "
        "word is 'on'/'off'",
        choices=("off", "on", "forces", "stress"),
    ),
    Setting(
        "scale", float, {"default": 1.0, "turbo": 1.0}, "",
        "multiply the energy, forces and virial (and per-atom energies) by this",
    ),
)

PRESETS = ("default", "turbo")
#: width of the name column of the settings table (mlipdrive info, the plugin's log)
TABLE_NAME_WIDTH = max(len(setting.name) for setting in SETTINGS)
#: metatomic's meaning of each value of ``non_conservative``: what is taken from
#: the model's non-conservative outputs (the rest comes from the energy's gradients)
NON_CONSERVATIVE_HEADS = {
    "off": (),
    "on": ("forces", "stress"),
    "forces": ("forces",),
    "stress": ("stress",),
}
_BY_NAME = {setting.name: setting for setting in SETTINGS}
#: every spelling of a setting (field name and keyword) -> the setting
_BY_SPELLING = {**_BY_NAME, **{s.keyword: s for s in SETTINGS if s.keyword}}


def field_name(spelling: str) -> str:
    """The field of :class:`InferenceSettings` for a setting spelled ``spelling``
    ('variant/energy' -> 'variant_energy'); ValueError for an unknown one."""
    setting = _BY_SPELLING.get(spelling)
    if setting is None:
        known = sorted(s.spelling for s in SETTINGS)
        raise ValueError(f"unknown setting '{spelling}'; known: {known}")
    return setting.name


class _SettingsMethods:
    """Validation and constructors of :class:`InferenceSettings`."""

    def __post_init__(self):
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if not isinstance(value, setting.type) or (
                setting.type is int and isinstance(value, bool)
            ):
                raise TypeError(
                    f"setting '{setting.name}' must be {setting.type.__name__}, "
                    f"got {value!r}"
                )
            if setting.choices and value not in setting.choices:
                raise ValueError(
                    f"setting '{setting.name}' must be one of {list(setting.choices)}, "
                    f"got {value!r}"
                )
            if setting.type in (int, float) and not number_ok(setting, value):
                raise ValueError(number_message(setting, value))
        parse_fusion_strategy(self.fusion_strategy)

    @property
    def forces_from_head(self) -> bool:
        """Forces from the model's non_conservative_forces output
        (:data:`NON_CONSERVATIVE_HEADS`), not from the energy's gradient."""
        return "forces" in NON_CONSERVATIVE_HEADS[self.non_conservative]

    @property
    def stress_from_head(self) -> bool:
        """Stress (and virial) from the model's non_conservative_stress output."""
        return "stress" in NON_CONSERVATIVE_HEADS[self.non_conservative]

    @classmethod
    def preset(cls, name: str, **overrides):
        """The named preset, with some fields replaced."""
        if name not in PRESETS:
            raise ValueError(f"unknown settings preset '{name}'; use one of {PRESETS}")
        values = {setting.name: setting.presets[name] for setting in SETTINGS}
        unknown = set(overrides) - set(_BY_SPELLING)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {sorted(unknown)}; known: "
                f"{sorted(s.spelling for s in SETTINGS)}"
            )
        values.update({field_name(key): _coerce(key, value) for key, value in overrides.items()})
        return cls(**values)

    @classmethod
    def from_strings(cls, preset: str = "default", **text: str):
        """Build settings from ``key=value`` text, as given on command lines."""
        return cls.preset(preset, **{key: parse_value(key, v) for key, v in text.items()})

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


InferenceSettings = dataclasses.make_dataclass(
    "InferenceSettings",
    [
        (setting.name, setting.type, dataclasses.field(default=setting.presets["default"]))
        for setting in SETTINGS
    ],
    bases=(_SettingsMethods,),
    frozen=True,
    namespace={"__doc__": "Settings applied once when a model is loaded (one field per "
               "row of :data:`SETTINGS`, defaults from the 'default' preset)."},
)


SettingsLike = Union[str, "InferenceSettings", Mapping[str, Any], None]


def resolve(settings: SettingsLike) -> InferenceSettings:
    """Accept a preset name, a mapping (with an optional 'preset' key) or settings."""
    if settings is None:
        return InferenceSettings.preset("default")
    if isinstance(settings, InferenceSettings):
        return settings
    if isinstance(settings, str):
        return InferenceSettings.preset(settings)
    values = dict(settings)
    preset = values.pop("preset", "default")
    return InferenceSettings.preset(preset, **values)


def _coerce(name: str, value: Any) -> Any:
    """A value given in Python: text as on a command line ('off', 'on', '0.2') for
    settings that are not text, True/False for 'on'/'off' (metatomic's
    non_conservative=True), and an int where a float is expected."""
    setting = _BY_NAME[field_name(name)]
    kind = setting.type
    if setting.reads_on_off and isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str) and (kind is not str or setting.reads_on_off):
        return parse_value(name, value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_value(name: str, text: Any) -> Any:
    """Convert a command-line value to the type of setting ``name`` (either spelling)."""
    setting = _BY_NAME[field_name(name)]
    kind = setting.type
    if not isinstance(text, str):
        return text
    if kind is bool:
        return parse_on_off(text, f"setting '{name}'")
    if setting.reads_on_off and text.lower() in ON_OFF_WORDS:
        return "on" if ON_OFF_WORDS[text.lower()] else "off"
    if text.lower() in setting.zero_words:
        return kind(0)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(
            f"expected a {kind.__name__} for setting '{name}', got '{text}'"
        ) from None


#: the words for a yes/no value, in any case, for settings and command-line options
ON_OFF_WORDS = {
    "on": True, "yes": True, "true": True, "1": True,
    "off": False, "no": False, "false": False, "0": False,
}


def parse_on_off(text: str, what: str) -> bool:
    """``text`` as a yes/no value (:data:`ON_OFF_WORDS`), or ValueError naming ``what``."""
    value = ON_OFF_WORDS.get(text.lower())
    if value is None:
        raise ValueError(f"expected on/off for {what}, got '{text}'")
    return value


def torch_threads(
    requested: int,
    ranks_on_node: int = 1,
    environ: Mapping[str, str] = os.environ,
    cores: Optional[Sequence[int]] = None,
) -> int:
    """The torch intra-op threads for the ``threads`` setting (see its row's doc).

    :param requested: the setting; N > 0 gives N
    :param ranks_on_node: MPI ranks sharing this node (1 without MPI)
    :param environ: where to read ``OMP_NUM_THREADS``
    :param cores: the usable cores; default this process's affinity mask
    """
    if requested > 0:
        return requested
    omp = environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    if cores is None:
        # macOS has no affinity masks: every core is usable there
        affinity = getattr(os, "sched_getaffinity", None)
        cores = affinity(0) if affinity else range(os.cpu_count() or 1)
    return max(1, len(cores) // max(1, ranks_on_node))


def number_ok(setting: Setting, value) -> bool:
    """The one rule for every number: finite, and at least its ``minimum`` if any."""
    return math.isfinite(value) and (setting.minimum is None or value >= setting.minimum)


def number_message(setting: Setting, value) -> str:
    """The error for a value of ``setting`` that breaks :func:`number_ok`."""
    unit = f" {setting.unit}" if setting.unit else ""
    bound = "" if setting.minimum is None else f" >= {setting.minimum:g}{unit}"
    return f"setting '{setting.name}' must be a finite number{bound}, got {value}"


#: the kinds of a TorchScript fusion strategy, and the error for a malformed one
FUSION_KINDS = ("STATIC", "DYNAMIC")
FUSION_STRATEGY_ERROR = "fusion_strategy must look like 'STATIC:2,DYNAMIC:10', got '{text}'"


def parse_fusion_strategy(text: str):
    """'STATIC:2,DYNAMIC:10' -> [('STATIC', 2), ('DYNAMIC', 10)]; '' -> None."""
    if text == "":
        return None
    strategy = []
    for item in text.split(","):
        kind, _, depth = item.partition(":")
        if kind not in FUSION_KINDS or not depth.isdigit():
            raise ValueError(FUSION_STRATEGY_ERROR.format(text=text))
        strategy.append((kind, int(depth)))
    return strategy


def cpp_header() -> str:
    """C++ declarations of the table, for the LAMMPS plugin."""
    cpp_types = {bool: "bool", int: "int", float: "double", str: "std::string"}

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value + '"'
        return repr(value)

    lines = [
        "// Generated from driver/mlipdrive/settings.py; do not edit.",
        "#pragma once",
        "#include <string>",
        "#include <utility>",
        "",
        "namespace mlipdrive {",
        "",
        "/// Inference settings, one field per row of mlipdrive.settings.SETTINGS.",
        "struct InferenceSettings {",
    ]
    for setting in SETTINGS:
        lines.append(f"    /// {setting.doc}")
        default = literal(setting.presets["default"])
        lines.append(f"    {cpp_types[setting.type]} {setting.name} = {default};")
    lines += ["};", "", "/// Preset names, in order.", "inline const char* const PRESETS[] = {"]
    lines += [f'    "{name}",' for name in PRESETS]
    lines += ["};", ""]
    lines.append("/// Apply a preset by name; returns false for an unknown name.")
    lines.append("inline bool apply_preset(InferenceSettings& s, const std::string& name) {")
    for preset in PRESETS:
        lines.append(f'    if (name == "{preset}") {{')
        for setting in SETTINGS:
            lines.append(f"        s.{setting.name} = {literal(setting.presets[preset])};")
        lines.append("        return true;")
        lines.append("    }")
    lines += ["    return false;", "}", ""]
    lines += _cpp_parsing_rules()
    lines += ["}  // namespace mlipdrive", ""]
    return "\n".join(lines)


def _cpp_parsing_rules() -> list:
    """ON_OFF_WORDS, FUSION_KINDS and the fusion-strategy error, as C++."""
    words = ", ".join(f'{{"{word}", {"true" if value else "false"}}}' for word, value in ON_OFF_WORDS.items())
    kinds = ", ".join(f'"{kind}"' for kind in FUSION_KINDS)
    before, after = FUSION_STRATEGY_ERROR.split("{text}")
    return [
        "/// The words of a yes/no value (any case), as mlipdrive.settings.ON_OFF_WORDS.",
        f"inline const std::pair<const char*, bool> ON_OFF_WORDS[] = {{{words}}};",
        "",
        "/// The kinds of a fusion strategy, as mlipdrive.settings.FUSION_KINDS.",
        f"inline const char* const FUSION_KINDS[] = {{{kinds}}};",
        "",
        "/// mlipdrive.settings.FUSION_STRATEGY_ERROR",
        "inline std::string fusion_strategy_error(const std::string& text) {",
        f'    return "{before}" + text + "{after}";',
        "}",
        "",
    ]


def main(argv: Optional[list] = None):
    parser = argparse.ArgumentParser(description="print or export the settings table")
    parser.add_argument("--cpp-header", metavar="FILE", help="write the C++ header here")
    args = parser.parse_args(argv)
    if args.cpp_header:
        with open(args.cpp_header, "w") as file:
            file.write(cpp_header())
    else:
        for setting in SETTINGS:
            presets = ", ".join(f"{k}={v!r}" for k, v in setting.presets.items())
            print(f"{setting.spelling:32} {presets:40} {setting.doc}")


if __name__ == "__main__":
    main()
