"""Pruned MPI domains against metatomic's own ASE calculator, under a real mpirun.

A short-range model (declared interaction range = its cutoff) gets only the pairs
with at least one local atom in each rank's domain (``mlipdrive.halo``); a
message-passing model gets every pair; a model that asks for no neighbour list
(GAP: featomic searches itself) gets non-periodic domains with every image as a
ghost. tests/mpi_scripts/pruning_check.py runs each model on N ranks, with the
``verify`` setting off and on, over the cases of decomposition_cases and a short
trajectory, and writes the deviations from ``metatomic_ase.MetatomicCalculator``
and what rank 0's domain gave the model; the float64 models must agree to
SAME_MODEL. ``make test`` runs 2 ranks (and LJ on 4); the other rank counts are
marked ``matrix``.
"""

import pytest
from model_families import MODEL_FAMILIES
from model_kinds import GAP
from mpi_testing import run_check_script

from structures import SAME_MODEL

LIMITS = {"energy/atom": SAME_MODEL, "forces": SAME_MODEL, "stress": SAME_MODEL,
          "energies": SAME_MODEL}


def run_pruning(n_ranks, models, tmp_path) -> dict:
    """``models``: (kind, path, extensions directory or None); the reports of
    pruning_check.py, whose job aborts on an exception."""
    return run_check_script("pruning_check.py", n_ranks, models, tmp_path / "pruning.json",
                            timeout=600, abort_on_exception=True)


def check_exact(report, label):
    """Every case and the trajectory within SAME_MODEL of metatomic_ase; the
    energy per atom within twice metatomic_ase's own round-off where that is
    more (GAP: 6e-10 eV/atom between a 2-atom cell and its supercell)."""
    for case, deviations in report.items():
        limits = dict(LIMITS)
        limits["energy/atom"] = max(SAME_MODEL, 2.0 * deviations.get("noise/atom", 0.0))
        over = {k: (deviations[k], limit) for k, limit in limits.items()
                if k in deviations and not deviations[k] <= limit}
        assert not over, f"{label} {case}: (deviation, limit) {over}"
    # the trajectory reused its domains (and their pruned pairs) between rebuilds
    assert report["trajectory"]["rebuilds"] == 2, report["trajectory"]


def cases_with_pairs(report):
    return {case: d for case, d in report.items() if "given" in d}


def check_pruned(report, label):
    """Only the pairs with a local atom given, fewer than all where ghosts pair
    among themselves, and no ghost left without a pair with a local atom."""
    counts = cases_with_pairs(report)
    for case, d in counts.items():
        assert d["pruned"], f"{label} {case}: {d}"
        assert d["given"] == d["with_local"], f"{label} {case}: {d}"
        assert d["unpaired_ghosts"] == 0, f"{label} {case}: {d}"
    assert any(d["given"] < d["all"] for d in counts.values()), f"{label}: {counts}"


def lj_cases():
    for n_ranks in (2, 3, 4):
        marks = (pytest.mark.matrix,) if n_ranks == 3 else ()
        yield pytest.param(n_ranks, marks=marks, id=f"np{n_ranks}")


@pytest.mark.parametrize("n_ranks", list(lj_cases()))
def test_lj_pruned_equals_metatomic_ase(n_ranks, lj_model, lj_model_full, tmp_path):
    """Half and full neighbour lists, with and without verify."""
    reports = run_pruning(n_ranks, [("lj", lj_model, None), ("lj", lj_model_full, None)],
                          tmp_path)
    assert len(reports) == 4
    for label, report in reports.items():
        assert not any("reference_error" in d for d in report.values()), report
        check_exact(report, f"{label} np={n_ranks}")
        check_pruned(report, f"{label} np={n_ranks}")


def family_cases():
    for n_ranks in (2, 3, 4):
        marks = () if n_ranks == 2 else (pytest.mark.matrix,)
        yield pytest.param(n_ranks, marks=marks, id=f"np{n_ranks}")


@pytest.mark.parametrize("n_ranks", list(family_cases()))
def test_soap_bpnn_pruned_equals_metatomic_ase(n_ranks, tmp_path):
    family = MODEL_FAMILIES["soap_bpnn"]
    reports = run_pruning(n_ranks, [("soap_bpnn", family.path, family.extensions)], tmp_path)
    for label, report in reports.items():
        check_exact(report, f"{label} np={n_ranks}")
        check_pruned(report, f"{label} np={n_ranks}")


@pytest.mark.parametrize("n_ranks", list(family_cases()))
def test_gap_in_domains_equals_metatomic_ase(n_ranks, tmp_path):
    """GAP asks for no neighbour list: nothing to prune, and its domains are
    periodic along no axis (featomic refuses a cell with zero vectors, as
    metatomic_ase shows on the slab)."""
    reports = run_pruning(n_ranks, [("gap", GAP.path, GAP.extensions)], tmp_path)
    for label, report in reports.items():
        assert "matrix is not invertible" in report.pop("slab")["reference_error"]
        check_exact(report, f"{label} np={n_ranks}")
        for case, d in cases_with_pairs(report).items():
            assert not d["pruned"] and d["given"] == 0, f"{label} {case}: {d}"


def test_message_passing_model_is_never_pruned(tmp_path):
    """MACE (range 2 x cutoff) gets every pair of its domain, ghost-ghost pairs
    included, and still equals metatomic_ase."""
    family = MODEL_FAMILIES["mace"]
    reports = run_pruning(2, [("mace", family.path, None)], tmp_path)
    for label, report in reports.items():
        check_exact(report, label)
        counts = cases_with_pairs(report)
        for case, d in counts.items():
            assert not d["pruned"] and d["given"] == d["all"], f"{label} {case}: {d}"
        assert any(d["with_local"] < d["all"] for d in counts.values()), counts
