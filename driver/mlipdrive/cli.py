"""The ``mlipdrive`` command: one subcommand per module that owns the work
(``DESCRIPTION`` is what users read)."""

import argparse
import importlib
import math
import re
import sys

DESCRIPTION = (
    "Run exported metatomic machine-learning potentials in LAMMPS, i-PI and ASE: "
    "describe a model, run molecular dynamics, serve i-PI, build and check the "
    "LAMMPS plugin, and measure which settings run fastest. 'mlipdrive COMMAND "
    "--help' describes each command."
)

# each module defines add_parser(subparsers), whose parser sets func(args) -> int
SUBCOMMAND_MODULES = [
    "mlipdrive.info",
    "mlipdrive.run_command",
    "mlipdrive.ipi.command",
    "mlipdrive.lammps",
    "mlipdrive.lammps.build_command",
    "mlipdrive.lammps.doctor",
    "mlipdrive.bench.cli",
    "mlipdrive.bench.advise",
]


def _ranged(convert, low, high=math.inf, low_open=False):
    """An argparse ``type``: ``convert(text)``, finite and in [low, high] (or
    (low, high] with ``low_open``); otherwise an error that states the range."""
    if convert is int:
        expected = f"an integer in {low}..{high}" if high < math.inf else f"an integer >= {low}"
    else:
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high) or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"expected {expected}, got '{text}'")
        return value

    return parse


# the argparse types of numeric options, shared by every subcommand
positive_int = _ranged(int, 1)
non_negative_int = _ranged(int, 0)
positive_float = _ranged(float, 0.0, low_open=True)
non_negative_float = _ranged(float, 0.0)
port_number = _ranged(int, 1, 65535)


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


# reST markup of the docstrings that subcommands show as their description
_ROLE = re.compile(r":\w+:`~?([^`]*)`")
_LITERAL_BLOCK = re.compile(r"^ *::\n\n", re.M)
_LITERAL_END = re.compile(r"::$", re.M)


def plain(text: str) -> str:
    """``text`` without reST markup: roles and double backquotes dropped, a ``::``
    line dropped and a trailing ``::`` written as one colon."""
    text = _ROLE.sub(r"\1", text).replace("``", "")
    return _LITERAL_END.sub(":", _LITERAL_BLOCK.sub("", text))


class HelpParser(argparse.ArgumentParser):
    """An ArgumentParser whose description and epilog are shown as plain text
    (:func:`plain`); the parsers of its subcommands are HelpParsers too."""

    def __init__(self, *args, description=None, epilog=None, **kwargs):
        super().__init__(*args, description=description and plain(description),
                         epilog=epilog and plain(epilog), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``mlipdrive`` parser with every subcommand."""
    parser = HelpParser(prog="mlipdrive", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"mlipdrive {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
