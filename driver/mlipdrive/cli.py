"""The ``mlipdrive`` command: one subcommand per module that owns the work."""

import argparse
import importlib
import sys

# each module defines add_parser(subparsers), whose parser sets func(args) -> int
SUBCOMMAND_MODULES = [
    "mlipdrive.info",
    "mlipdrive.md",
    "mlipdrive.ipi_command",
    "mlipdrive.lammps",
    "mlipdrive.bench.cli",
]


def add_settings_arguments(parser: argparse.ArgumentParser):
    """Options shared by every command that loads a model (mirrors pair_style keywords)."""
    from .settings import PRESETS, SETTINGS

    parser.add_argument("--settings", default="default", choices=PRESETS, help="preset")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--extensions", default=None, help="model extensions directory")
    for setting in SETTINGS:
        parser.add_argument(
            "--" + setting.name.replace("_", "-"),
            dest="setting_" + setting.name,
            default=None,
            metavar=setting.type.__name__.upper(),
            help=f"{setting.doc} (default: {setting.presets['default']!r}, "
            f"turbo: {setting.presets['turbo']!r})",
        )


def settings_from_arguments(args):
    """The InferenceSettings that ``add_settings_arguments`` options ask for."""
    from .settings import SETTINGS, InferenceSettings

    given = {
        setting.name: getattr(args, "setting_" + setting.name)
        for setting in SETTINGS
        if getattr(args, "setting_" + setting.name) is not None
    }
    return InferenceSettings.from_strings(args.settings, **given)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mlipdrive", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"mlipdrive {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
