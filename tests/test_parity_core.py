"""metatomic's output options in the Python core and the ASE calculator, each
against ``metatomic_ase.MetatomicCalculator`` given the same option: variants,
the energy uncertainty (values, warning, stop), non-conservative forces and
stress, scale; and the errors for what a model lacks.

The models are exact LJ argon with every kind of output (``parity_models``): each
output is a known function, and the non-conservative heads give twice the LJ
forces, so which one an engine used shows in the numbers.
"""

import warnings

import ase.calculators.calculator
import numpy as np
import pytest
from metatomic.torch import ModelOutput
from metatomic_ase import MetatomicCalculator
from parity_models import ENSEMBLE, UNCERTAINTY_FACTOR, export_parity_argon

import mlipdrive
from mlipdrive.ase import MLIPCalculator
from mlipdrive.halo import Decomposition, DomainEvaluator
from mlipdrive.outputs import OutputChoiceError
from structures import SAME_MODEL, argon
from mlipdrive.uncertainty import UncertaintyExceeded, UncertaintyWarning

# metatomic_ase's options for each of ours
REFERENCE_OPTIONS = {
    "default": ({}, {}),
    "variant": ({"variant": "strong"}, {"variants": {"energy": "strong"}}),
    "variant/energy": ({"variant/energy": "strong"}, {"variants": {"energy": "strong"}}),
    "non_conservative": ({"non_conservative": True}, {"non_conservative": True}),
    "non_conservative, variant": (
        {"non_conservative": True, "variant": "strong"},
        {"non_conservative": True, "variants": {"energy": "strong"}},
    ),
    "variant/non_conservative_*": (
        {"non_conservative": True, "variant/non_conservative_forces": "strong",
         "variant/non_conservative_stress": "strong"},
        {"non_conservative": True,
         "variants": {"non_conservative_force": "strong", "non_conservative_stress": "strong"}},
    ),
}


@pytest.fixture(scope="module")
def parity_model(tmp_path_factory):
    return export_parity_argon(tmp_path_factory.mktemp("models") / "parity.pt")


def near_equilibrium():
    """fcc argon near its equilibrium: every atom's uncertainty below 0.1 eV."""
    return argon(repeat=2, rattle=0.05, strain=0.02, seed=3)


def compressed():
    """The same crystal compressed by 18%: far from equilibrium, uncertainties above 0.1 eV."""
    atoms = near_equilibrium()
    atoms.set_cell(atoms.cell.array * 0.82, scale_atoms=True)
    return atoms


def reference_results(model, atoms, options):
    calculator = MetatomicCalculator(str(model), uncertainty_threshold=None, **options)
    calculator.calculate(atoms, ["energy", "energies", "forces", "stress"], ase.calculators.calculator.all_changes)
    return calculator.results


@pytest.mark.parametrize("name", list(REFERENCE_OPTIONS))
def test_ase_matches_metatomic_given_the_same_option(parity_model, name):
    ours, theirs = REFERENCE_OPTIONS[name]
    atoms = near_equilibrium()
    reference = reference_results(parity_model, atoms, theirs)
    atoms.calc = MLIPCalculator(parity_model, settings=ours)
    np.testing.assert_allclose(atoms.get_potential_energy(), reference["energy"], rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(atoms.get_forces(), reference["forces"], rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(atoms.get_stress(), reference["stress"], rtol=0, atol=SAME_MODEL)


def test_non_conservative_forces_are_the_heads_not_the_gradients(parity_model):
    """The heads give twice LJ's forces and stress: non_conservative on doubles them,
    with no backward pass; the energy stays LJ's."""
    atoms = near_equilibrium()
    conservative = mlipdrive.load(parity_model)
    direct = mlipdrive.load(parity_model, settings={"non_conservative": True})
    args = (atoms.positions, atoms.numbers, atoms.cell.array, True)
    plain, heads = conservative.compute(*args), direct.compute(*args)
    assert heads.energy == pytest.approx(plain.energy, abs=SAME_MODEL)
    np.testing.assert_allclose(heads.forces, 2 * plain.forces, rtol=0, atol=SAME_MODEL)
    np.testing.assert_allclose(heads.virial, 2 * plain.virial, rtol=0, atol=SAME_MODEL)
    assert direct.timings.get("backward", 0.0) == 0.0 < conservative.timings["backward"]


def test_scale_multiplies_energy_forces_and_stress(parity_model):
    atoms = near_equilibrium()
    reference = reference_results(parity_model, atoms, {})
    atoms.calc = MLIPCalculator(parity_model, settings={"scale": 0.25})
    atoms.calc.calculate(atoms, ["energy", "energies", "forces", "stress"], ase.calculators.calculator.all_changes)
    for key in ("energy", "energies", "forces", "stress"):
        np.testing.assert_allclose(atoms.calc.results[key], 0.25 * reference[key], rtol=0, atol=SAME_MODEL)


@pytest.mark.parametrize("variant", ["", "strong"])
def test_uncertainty_values_are_the_models(parity_model, variant):
    """results['energy_uncertainty'] is the model's per-atom output, as metatomic's
    calculator computes it, with the energy's variant."""
    atoms = compressed()
    output = "energy_uncertainty" + (f"/{variant}" if variant else "")
    expected = MetatomicCalculator(str(parity_model)).run_model(
        atoms, {output: ModelOutput(unit="eV", sample_kind="atom")}
    )[output].block().values.detach().numpy().reshape(-1)
    atoms.calc = MLIPCalculator(parity_model, settings={"variant": variant, "uncertainty_threshold": 10.0})
    atoms.get_potential_energy()
    np.testing.assert_allclose(atoms.calc.results["energy_uncertainty"], expected, rtol=0, atol=SAME_MODEL)
    energies = atoms.get_potential_energies()
    np.testing.assert_allclose(expected, UNCERTAINTY_FACTOR * np.abs(energies), rtol=1e-12)


def test_uncertainty_warns_far_from_equilibrium_and_not_near_it(parity_model):
    """The default threshold (0.1 eV/atom, metatomic's): no warning near equilibrium;
    on the compressed crystal, a warning naming the atoms metatomic names."""
    calculator = MLIPCalculator(parity_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncertaintyWarning)
        calculator.get_potential_energy(near_equilibrium())

    atoms = compressed()
    with pytest.warns(UserWarning) as theirs:
        reference = MetatomicCalculator(str(parity_model))
        reference.calculate(atoms, ["energy"], ase.calculators.calculator.all_changes)
    named = [str(w.message) for w in theirs if "uncertainties are larger" in str(w.message)]
    assert len(named) == 1, [str(w.message) for w in theirs]
    with pytest.warns(UncertaintyWarning, match=r"above the threshold of 0.1 eV/atom for (\d+) atom") as ours:
        calculator.get_potential_energy(atoms)
    message = str(ours[0].message)
    uncertainty = calculator.results["energy_uncertainty"]
    above = np.flatnonzero(uncertainty > 0.1)
    assert f"for {len(above)} atom(s) at evaluation 2" in message
    worst = np.argsort(-uncertainty)[:5]
    assert message.index(f"atom {worst[0]} (") < message.index(f"atom {worst[1]} (")
    assert set(above) == {int(i) for i in named[0].split("[")[1].split("]")[0].split()}


def test_uncertainty_action_stop_raises(parity_model):
    calculator = MLIPCalculator(parity_model, settings={"uncertainty_action": "stop"})
    calculator.get_potential_energy(near_equilibrium())
    with pytest.raises(UncertaintyExceeded, match="above the threshold of 0.1 eV/atom"):
        calculator.get_potential_energy(compressed())


@pytest.mark.parametrize("off", ["off", "0", 0.0])
def test_uncertainty_threshold_off(parity_model, off):
    calculator = MLIPCalculator(parity_model, settings={"uncertainty_threshold": off})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncertaintyWarning)
        calculator.get_potential_energy(compressed())
    assert "energy_uncertainty" not in calculator.results
    assert calculator.potential.outputs.uncertainty is None


def test_models_without_uncertainty_check_nothing(model_family):
    """The shipped families have no uncertainty output: the check is silently off."""
    potential = mlipdrive.load(model_family.path, extensions=model_family.extensions)
    assert potential.outputs.uncertainty is None and potential.notes == []


def test_a_missing_variant_lists_the_models_variants(parity_model):
    with pytest.raises(OutputChoiceError) as error:
        mlipdrive.load(parity_model, settings={"variant": "pbe0"})
    assert str(error.value) == (
        "model 'lj-parity' has no variant 'pbe0' of its 'energy' output (asked for by the "
        "setting 'variant'); its variants of 'energy': default (LJ argon), 'strong' (LJ, "
        "epsilon x 1.5). Give one of these, or 'off' for the default output"
    )
    # variant/energy_uncertainty off keeps the default uncertainty with another energy
    potential = mlipdrive.load(
        parity_model, settings={"variant": "strong", "variant/energy_uncertainty": "off"}
    )
    assert (potential.outputs.energy, potential.outputs.uncertainty) == ("energy/strong", "energy_uncertainty")


def test_missing_outputs_name_the_fix(tmp_path):
    no_heads = export_parity_argon(tmp_path / "no-heads.pt", variants=False, heads=False)
    with pytest.raises(OutputChoiceError, match="'non_conservative on' \\(or 'forces'\\) needs a per-atom 'non_conservative_force'"):
        mlipdrive.load(no_heads, settings={"non_conservative": True})


def test_energy_ensemble_members_forces_and_virials(parity_model):
    """Each member is ENSEMBLE[k] x the energy; its forces and virial follow."""
    atoms = near_equilibrium()
    potential = mlipdrive.load(parity_model)
    args = (atoms.positions, atoms.numbers, atoms.cell.array, True)
    results = potential.compute(*args, ensemble="forces")
    factors = np.array(ENSEMBLE)
    np.testing.assert_allclose(results.energy_ensemble, factors * results.energy, rtol=1e-12)
    np.testing.assert_allclose(results.forces_ensemble, factors[:, None, None] * results.forces, atol=SAME_MODEL)
    np.testing.assert_allclose(results.virial_ensemble, factors[:, None, None] * results.virial, atol=SAME_MODEL)


@pytest.mark.parametrize("settings", [{"non_conservative": True}, {"variant": "strong", "scale": 0.5}])
def test_domains_add_up_to_the_whole(parity_model, settings):
    """Cut into 4 domains (the MPI path's shares, evaluated one after the other),
    the non-conservative heads, the uncertainty and the scaled variant add up to
    the whole structure's results."""
    atoms = argon(repeat=4, rattle=0.1, strain=0.03, seed=5)
    potential = mlipdrive.load(parity_model, settings=settings)
    positions, types, cell, pbc = atoms.positions, atoms.numbers, atoms.cell.array, np.ones(3, bool)
    whole = potential.compute(positions, types, cell, pbc)
    decomposition = Decomposition(positions, cell, pbc, 4, potential.interaction_range, grid=(2, 2, 1))
    evaluator = DomainEvaluator(potential)
    total = mlipdrive.Results(energy=0.0, forces=0.0, virial=0.0, energy_uncertainty=0.0)
    for domain in range(4):
        share = evaluator.evaluate(
            decomposition.domain(domain), types, structure_cell=cell, structure_pbc=pbc
        )
        for name in ("energy", "forces", "virial", "energy_uncertainty"):
            setattr(total, name, getattr(total, name) + getattr(share, name))
    potential.finish(total)
    for name in ("forces", "virial", "energy_uncertainty"):
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=0, atol=SAME_MODEL)
    assert total.energy == pytest.approx(whole.energy, abs=SAME_MODEL)
