"""The rules that the LAMMPS plugin implements again in C++ give Python's answers.

Most shared rules are generated into the plugin from their Python definition
(``lammps_plugin/generate_python_rules.py``). Three are decisions written in both
languages: which model outputs a step uses (:func:`mlipdrive.outputs.choose_outputs`),
how many torch threads a process takes (:func:`mlipdrive.settings.torch_threads`)
and which atoms the uncertainty message names (:func:`mlipdrive.uncertainty.worst_atoms`).
``mlipdrive_rules_probe``, built beside the plugin from the plugin's own object
files, answers questions with the C++ code; each test puts a grid of questions to
both and compares every answer, messages included.
"""

import itertools
import os
import pathlib
import subprocess
from typing import Dict, List

import numpy as np
import pytest
from metatomic.torch import ModelCapabilities, ModelOutput

from mlipdrive.outputs import OutputChoiceError, choose_outputs
from mlipdrive.settings import InferenceSettings, torch_threads
from mlipdrive.uncertainty import worst_atoms

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROBE = ROOT / "build" / "lammps-plugin" / "mlipdrive_rules_probe"

UNITS = {"energy": "eV", "energy_uncertainty": "eV", "energy_ensemble": "eV",
         "non_conservative_force": "eV/A", "non_conservative_forces": "eV/A",
         "non_conservative_stress": "eV/A^3"}

# the outputs models declare: name:sample_kind
OUTPUT_SETS = [
    "energy:system",
    "energy:atom,energy_uncertainty:atom",
    "energy:system,energy_uncertainty:system",
    "energy/xyz:atom",
    "energy:atom,energy/pbe:atom,energy_uncertainty:atom,energy_uncertainty/pbe:atom",
    "energy:atom,non_conservative_forces:atom,non_conservative_stress:system",
    "energy:atom,non_conservative_forces:system",
    "energy:atom,non_conservative_force:atom",
    "energy:atom,non_conservative_stress:system",
    "energy/pbe:atom,non_conservative_forces/pbe:atom,non_conservative_forces:atom,energy:atom",
    "energy_ensemble:atom",
]
SETTINGS_WORDS = [
    "",
    "preset turbo",
    "uncertainty_threshold 0",
    "uncertainty_action stop",
    "variant pbe",
    "variant/energy pbe",
    "variant pbe variant/energy off",
    "variant/energy_uncertainty pbe",
    "variant/non_conservative_forces pbe non_conservative forces",
    "non_conservative on",
    "non_conservative forces",
    "non_conservative stress",
    "variant xyz",
    "variant pbe non_conservative on",
]


@pytest.fixture(scope="module")
def probe():
    assert PROBE.is_file(), (
        f"{PROBE} is missing: the plugin's build makes it (make setup, or "
        "lammps_plugin/build.sh .venv/bin/python)"
    )
    return PROBE


def ask(probe: pathlib.Path, questions: List[str], environ: Dict[str, str] = None) -> List[str]:
    """The probe's answers, one per question (tab-separated fields)."""
    result = subprocess.run(
        [str(probe)], input="\n".join(questions) + "\n", capture_output=True, text=True,
        env=environ or dict(os.environ), timeout=120, check=True,
    )
    answers = result.stdout.splitlines()
    assert len(answers) == len(questions), result.stderr
    return answers


def python_outputs_answer(outputs_text: str, words: str) -> str:
    """choose_outputs' answer, written as the probe writes its own."""
    outputs = {}
    for item in outputs_text.split(","):
        name, kind = item.split(":")
        unit = UNITS[name.partition("/")[0]]
        outputs[name] = ModelOutput(quantity="", unit=unit, sample_kind=kind, description=name)
    outputs = ModelCapabilities(outputs=outputs).outputs
    pairs = dict(zip(words.split()[::2], words.split()[1::2]))
    try:
        settings = InferenceSettings.from_strings(pairs.pop("preset", "default"), **pairs)
        choice = choose_outputs(outputs, settings)
    except (OutputChoiceError, ValueError) as error:
        return "error=" + str(error).replace("\n", "\\n")
    return (f"energy={choice.energy};uncertainty={choice.uncertainty or ''};"
            f"forces={choice.non_conservative_forces or ''};stress={choice.non_conservative_stress or ''};"
            f"notes={'|'.join(choice.notes)}".replace("\n", "\\n"))


def probe_outputs_question(outputs_text: str, words: str) -> str:
    with_units = ",".join(
        f"{item}:{UNITS[item.partition(':')[0].partition('/')[0]]}" for item in outputs_text.split(",")
    )
    return f"outputs\t{words}\t{with_units}"


def test_choose_outputs_same_in_both(probe):
    cases = list(itertools.product(OUTPUT_SETS, SETTINGS_WORDS))
    answers = ask(probe, [probe_outputs_question(o, w) for o, w in cases])
    differ = [(o, w, python_outputs_answer(o, w), cpp) for (o, w), cpp in zip(cases, answers)
              if python_outputs_answer(o, w) != cpp]
    assert not differ, "\n".join(f"{o} | {w}\n  python: {p}\n  c++:    {c}" for o, w, p, c in differ)
    # the grid reaches every kind of answer: a choice with and without notes, errors
    assert any(a.startswith("error=") for a in answers)
    assert any("notes=" in a and not a.endswith("notes=") for a in answers)
    assert any("forces=non_conservative" in a for a in answers)


@pytest.mark.parametrize("omp", [None, "", "2", "0", "x1", "3"])
def test_torch_threads_same_in_both(probe, omp):
    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp is not None:
        environ["OMP_NUM_THREADS"] = omp
    cases = list(itertools.product([0, 1, 3], [1, 2, 3]))
    answers = ask(probe, [f"threads\t{n}\t{r}" for n, r in cases], environ)
    expected = [str(torch_threads(n, r, environ=environ)) for n, r in cases]
    assert answers == expected


def test_worst_atoms_same_in_both(probe):
    generator = np.random.default_rng(7)
    questions, expected = [], []
    for size in (1, 4, 12):
        ids = generator.permutation(1000)[:size] + 1
        # ties (values from a short list) must be broken the same way
        for values in (generator.uniform(0, 0.3, size), generator.choice([0.05, 0.2, 0.25], size)):
            for threshold in (0.1, 0.22):
                count, worst = worst_atoms(values, threshold, labels=[int(i) for i in ids])
                expected.append(f"count={count};worst={worst}")
                pairs = ",".join(f"{i}:{float(v)!r}" for i, v in zip(ids, values))
                questions.append(f"uncertainty\t{threshold!r}\t{pairs}")
    assert ask(probe, questions) == expected
