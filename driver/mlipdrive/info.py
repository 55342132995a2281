"""``mlipdrive info MODEL.pt``: what a model is and how mlipdrive will run it."""

from .cli import add_settings_arguments, settings_from_arguments
from .settings import SETTINGS, TABLE_NAME_WIDTH


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "info", help="describe a model and the settings that apply",
        description="Load a model and print what it declares (atomic types, outputs and "
        "their variants, units, interaction range, dtype, devices, neighbour lists) and "
        "every inference setting it would run with, for the preset and settings given; "
        "e.g. 'mlipdrive info model.pt --settings turbo'.",
    )
    parser.add_argument("model", help="exported metatomic model (.pt)")
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def describe(potential) -> str:
    """A human-readable summary of a loaded potential."""
    import torch

    caps = potential.capabilities
    outputs = ", ".join(
        f"{name} [{output.unit or '-'}]" for name, output in caps.outputs.items()
    )
    lines = [
        f"atomic types      {potential.atomic_types}",
        f"outputs           {outputs}",
        f"length unit       {caps.length_unit}",
        f"interaction range {caps.interaction_range:g} {caps.length_unit}",
        f"dtype             {potential.exported_dtype} "
        f"(evaluated in {caps.dtype})",
        f"devices           {list(caps.supported_devices)} (running on {potential.device})",
        f"torch threads     {torch.get_num_threads()}",
    ]
    lines += _output_lines(potential)
    lines += [f"note              {note}" for note in potential.notes]
    for options, cutoff in zip(potential.requested_neighbor_lists, potential.cutoffs):
        kind = "full" if options.full_list else "half"
        lines.append(
            f"neighbour list    {kind}, cutoff {cutoff:g} {potential.units.length}, "
            f"strict={options.strict}"
        )
    lines.append("settings")
    for name, value in potential.settings.as_dict().items():
        lines.append(f"  {name:{TABLE_NAME_WIDTH}} {value!r}")
    lines.append(f"turbo preset      {_turbo_changes()}")
    return "\n".join(lines)


def _turbo_changes() -> str:
    """What the 'turbo' preset sets differently from 'default'."""
    changed = [f"{s.name} {s.presets['turbo']!r}" for s in SETTINGS
               if s.presets["turbo"] != s.presets["default"]]
    return "sets " + ", ".join(changed) + " (the rest as 'default')"


def _output_lines(potential) -> list:
    """The variants of each output the settings choose from, and the choice."""
    from .outputs import OUTPUT_NAMES, describe_variants

    outputs = potential.capabilities.outputs
    lines = []
    for output in OUTPUT_NAMES:
        variants = describe_variants(outputs, output)
        if variants:
            lines.append(f"variants          {output}: {variants}")
    chosen = potential.outputs
    used = [f"energy '{chosen.energy}'"]
    if chosen.uncertainty:
        settings = potential.settings
        used.append(
            f"uncertainty '{chosen.uncertainty}' ({settings.uncertainty_action} above "
            f"{settings.uncertainty_threshold:g} eV/atom)"
        )
    if chosen.non_conservative_forces:
        used.append(f"forces '{chosen.non_conservative_forces}'")
    if potential.settings.stress_from_head:
        used.append(f"stress '{chosen.non_conservative_stress or 'none'}'")
    lines.append("uses              " + ", ".join(used))
    return lines


def run(args) -> int:
    from .loading import load

    potential = load(
        args.model,
        device=args.device,
        settings=settings_from_arguments(args),
        extensions=args.extensions,
    )
    metadata = potential.model.metadata()
    print(f"model             {args.model}: {metadata.name}")
    print(describe(potential))
    return 0
