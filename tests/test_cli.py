"""The ``mlipdrive`` command, run as a user runs it."""

import argparse
import pathlib
import re
import subprocess
import sys

import pytest

from mlipdrive.settings import SETTINGS

MLIPDRIVE = [sys.executable, "-m", "mlipdrive.cli"]


def run(*args, timeout=300):
    return subprocess.run([*MLIPDRIVE, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def test_info_describes_model_and_settings(mace_model):
    result = run("info", mace_model, "--settings", "turbo", "--threads", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "atomic types      [13, 29]" in out
    assert "dtype             float64 (evaluated in float32)" in out
    assert "interaction range" in out and "neighbour list" in out
    rows = settings_rows(out)
    assert rows["dtype"] == "'float32'"  # turbo's evaluation dtype
    assert rows["threads"] == "1"
    assert "torch threads     1" in out
    assert "note              tf32: no effect on CPU" in out  # turbo's tf32
    # one column for the values, however long the name
    table = [line for line in out.splitlines() if line.startswith("  ") and line.split()[0] in rows]
    assert len({len(line) - len(rows[line.split()[0]]) for line in table}) == 1, table
    turbo = {s.name: s.presets["turbo"] for s in SETTINGS if s.presets["turbo"] != s.presets["default"]}
    changes = next(line for line in out.splitlines() if line.startswith("turbo preset"))
    assert turbo and all(f"{name} {value!r}" in changes for name, value in turbo.items())


def settings_rows(output: str) -> dict:
    """name -> value of the rows after the line 'settings' of mlipdrive info's output."""
    lines = output.splitlines()
    rows = {}
    for line in lines[lines.index("settings") + 1:]:
        if not line.startswith("  "):
            break
        name, value = line.split(maxsplit=1)
        rows[name] = value
    return rows


# reST left in a help text: a literal-block marker, double backquotes, a role
REST_MARKUP = re.compile(r"::|``|:\w+:`")


def every_parser(parser, words=("mlipdrive",)):
    """(command words, parser) of the command and of every subcommand under it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from every_parser(subparser, words + (name,))


def test_every_help_has_a_description_and_no_markup():
    """What --help shows users: a description of each command, in plain text."""
    from mlipdrive.cli import build_parser

    helps = {" ".join(words): (parser.description, parser.format_help())
             for words, parser in every_parser(build_parser())}
    driver = subprocess.run([str(pathlib.Path(sys.executable).parent / "mlipdrive-ipi-driver"),
                             "--help"], capture_output=True, text=True, timeout=120)
    helps["mlipdrive-ipi-driver"] = (driver.stdout.split("\n\n")[1], driver.stdout)
    assert {"mlipdrive info", "mlipdrive run", "mlipdrive bench soak"} <= set(helps)
    for command, (description, text) in helps.items():
        assert description and description.strip(), f"{command} --help has no description"
        assert not REST_MARKUP.search(text), f"{command} --help shows reST markup:\n{text}"


def test_info_bad_model_path(tmp_path):
    result = run("info", tmp_path / "missing.pt")
    assert result.returncode == 2
    assert "does not exist; give the path" in result.stderr


def test_info_bad_setting_value(lj_model):
    result = run("info", lj_model, "--fixed-composition", "sometimes")
    assert result.returncode == 2
    assert "expected on/off for setting 'fixed_composition'" in result.stderr


@pytest.mark.parametrize("settings", ["default", "turbo"])
def test_run_prints_conserved_energy(mace_model, settings):
    result = run("run", "--model", mace_model, "--steps", "20", "--print-every", "10",
                 "--repeat", "2", "--settings", settings)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if not line.startswith("#")]
    assert [int(row[0]) for row in rows] == [0, 10, 20]
    totals = [float(row[3]) for row in rows]
    # 20 fs of NVE at 300 K: total energy per atom stays within 1 meV
    assert max(totals) - min(totals) < 1e-3


# ------------------------------------------------------------------ numeric options


@pytest.mark.parametrize(
    "argv,option,expected",
    [
        (["run", "--steps", "-5"], "--steps", "an integer >= 0"),
        (["run", "--timestep", "0"], "--timestep", "a finite number > 0"),
        (["run", "--timestep", "-1"], "--timestep", "a finite number > 0"),
        (["run", "--timestep", "nan"], "--timestep", "a finite number > 0"),
        (["run", "--temperature", "-300"], "--temperature", "a finite number >= 0"),
        (["run", "--repeat", "0"], "--repeat", "an integer >= 1"),
        (["run", "--print-every", "0"], "--print-every", "an integer >= 1"),
        (["run", "--seed", "-1"], "--seed", "an integer >= 0"),
        (["ipi", "--port", "70000"], "--port", "an integer in 1..65535"),
        (["ipi", "--unix", "x", "--connect-timeout", "-1"], "--connect-timeout",
         "a finite number >= 0"),
        (["ipi", "--unix", "x", "--message-timeout", "0"], "--message-timeout",
         "a finite number > 0"),
        (["ipi", "--unix", "x", "--idle-timeout", "inf"], "--idle-timeout",
         "a finite number >= 0"),
        (["lammps", "--in", "in.md", "-np", "0"], "-np/--np", "an integer >= 1"),
    ],
)
def test_numeric_options_are_range_checked(argv, option, expected, capsys):
    from mlipdrive.cli import main

    command, rest = argv[0], argv[1:]
    required = {"run": ["--model", "m.pt"], "ipi": ["--model", "m.pt", "--structure", "s.xyz"]}
    with pytest.raises(SystemExit) as exit_:
        main([command, *required.get(command, []), *rest])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"mlipdrive {command}: error: argument {option}: expected {expected}, " \
        f"got '{argv[-1]}'"


def test_ipi_driver_port_is_range_checked(capsys):
    from mlipdrive.ipi.command import ipi_driver_main

    with pytest.raises(SystemExit) as exit_:
        ipi_driver_main(["-a", "localhost", "-p", "0"])
    assert exit_.value.code == 2
    assert "argument -p/--port: expected an integer in 1..65535, got '0'" in capsys.readouterr().err


def test_range_types_accept_their_bounds():
    from mlipdrive.cli import (
        non_negative_float, non_negative_int, port_number, positive_float, positive_int,
    )

    assert positive_int("1") == 1 and non_negative_int("0") == 0
    assert positive_float("1e-3") == 1e-3 and non_negative_float("0") == 0.0
    assert port_number("65535") == 65535


# ------------------------------------------------------------------ structure files


def unreadable_structures(tmp_path):
    """(name, path, reason) of files that no command can start from."""
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("garbage\nnot a structure\n")
    empty = tmp_path / "no-atoms.xyz"
    empty.write_text("0\nno atoms\n")
    return {
        "missing": (tmp_path / "missing.xyz", "no such file"),
        "directory": (tmp_path, "it is a directory"),
        "garbage": (garbage, "ASE cannot parse it"),
        "no-atoms": (empty, "it holds no atoms"),
    }


@pytest.mark.parametrize("kind", ["missing", "directory", "garbage", "no-atoms"])
def test_run_unreadable_structure(tmp_path, lj_model, kind):
    path, reason = unreadable_structures(tmp_path)[kind]
    result = run("run", "--model", lj_model, "--structure", path, "--steps", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mlipdrive run: error: cannot read structure '{path}': {reason}")


def test_ipi_commands_unreadable_structure(tmp_path, lj_model):
    path, reason = unreadable_structures(tmp_path)["garbage"]
    message = f"mlipdrive ipi: error: cannot read structure '{path}': {reason}"
    result = run("ipi", "--model", lj_model, "--structure", path, "--unix", "unused")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
    driver = subprocess.run(
        [sys.executable, "-m", "mlipdrive.ipi.command", "-u", "-a", "unused",
         "-o", f"template={path},model={lj_model}"],
        capture_output=True, text=True, timeout=300,
    )
    assert driver.returncode == 2
    assert driver.stderr.strip().splitlines()[-1].startswith(message), driver.stderr
