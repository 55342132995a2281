"""``mlipdrive advise``: the ghost-shell geometry against the engines' own ghost
counts, the crossover arithmetic, and a short end-to-end run whose
recommendation is its fastest measured option with the matching commands."""

import json
import re

import numpy as np
import pytest
from lammps_testing import export_lj_variant, run_lmp

from mlipdrive.bench import advise, advise_report, ghosts
from mlipdrive.cli import main
from mlipdrive.halo import Decomposition
from mlipdrive.neighbors import PAIR_SORT_MARGIN

# an ideal gas (uniform random atoms) fills a shell exactly as its volume says;
# a crystal's lattice planes make it a few % more or less
GAS_ATOMS = 4000
GAS_EDGE = 50.0  # Å
LJ_CUTOFF = 8.5  # Å
SKIN = 2.0  # Å: LAMMPS's default in metal units
SHELL = LJ_CUTOFF + SKIN
GEOMETRY_RTOL = 0.05  # ~5000 ghosts per domain: Poisson noise ~1.5 %


def gas(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, GAS_EDGE, size=(GAS_ATOMS, 3)), np.eye(3) * GAS_EDGE


@pytest.mark.parametrize("ranks", [2, 4, 8])
def test_halo_geometry_bounds_the_decomposition(ranks):
    """mlipdrive.halo keeps a ghost only within the range of some local atom:
    near the shell's outer edge some are left out, about as many as a shell
    half a mean atomic spacing thinner holds. The geometry is the upper bound
    (advise scales it by the counted ghosts of the measured system)."""
    positions, cell = gas(ranks)
    split = Decomposition(positions, cell, [True] * 3, ranks, SHELL)
    counted = np.mean([split.domain(r).n_ghosts for r in range(ranks)])
    spacing = (GAS_EDGE**3 / GAS_ATOMS) ** (1 / 3)
    lengths = [GAS_EDGE] * 3
    assert ghosts.halo_ghosts(GAS_ATOMS, lengths, ranks, SHELL - spacing / 2) < counted
    assert counted < ghosts.halo_ghosts(GAS_ATOMS, lengths, ranks, SHELL)


def lammps_ghost_count(tmp_path, model, ranks):
    """The ghosts the model sees on rank 0 of a gas run (mixed layout: across
    the cut axes only), after checking LAMMPS's processor grid."""
    script = "\n".join([
        "units metal",
        f"region box block 0 {GAS_EDGE} 0 {GAS_EDGE} 0 {GAS_EDGE}",
        "create_box 1 box",
        f"create_atoms 1 random {GAS_ATOMS} 4928459 NULL overlap 1.0",
        "mass 1 39.948",
        f"pair_style mlipdrive {model}",
        "pair_coeff * * Ar",
        "run 0",
    ])
    output = run_lmp(tmp_path, script, ranks=ranks).output
    grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", output).groups()
    assert sorted(map(int, grid)) == sorted(ghosts.lammps_grid(ranks, [GAS_EDGE] * 3))
    return float(re.search(r"System on rank 0: \d+ local \+ (\d+) ghost", output).group(1))


@pytest.mark.parametrize("ranks", [2, pytest.param(4, marks=pytest.mark.matrix)])
def test_lammps_geometry_matches_the_ghosts_the_model_sees(tmp_path, ranks):
    """A message-passing model (range 9 Å > cutoff) sees LAMMPS's whole
    box-shaped shell, range + skin thick."""
    model = export_lj_variant(tmp_path / "lj-range-9.pt", interaction_range=9.0)
    counted = lammps_ghost_count(tmp_path, model, ranks)
    predicted = ghosts.lammps_ghosts(GAS_ATOMS, [GAS_EDGE] * 3, ranks, 9.0 + SKIN)
    assert predicted == pytest.approx(counted, rel=GEOMETRY_RTOL)


@pytest.mark.parametrize("ranks", [2, pytest.param(4, marks=pytest.mark.matrix)])
def test_lammps_ghosts_within_reach_of_a_short_range_model(tmp_path, lj_model, ranks):
    """A model whose range is its cutoff sees only the ghosts within the
    plugin's reach (cutoff x (1 + PAIR_SORT_MARGIN)) of a local atom: bounded
    like the halo's, and advise's model facts give that reach as the shell."""
    counted = lammps_ghost_count(tmp_path, lj_model, ranks)
    spacing = (GAS_EDGE**3 / GAS_ATOMS) ** (1 / 3)
    reach = LJ_CUTOFF * (1.0 + PAIR_SORT_MARGIN)
    lengths = [GAS_EDGE] * 3
    assert ghosts.lammps_ghosts(GAS_ATOMS, lengths, ranks, reach - spacing / 2, within_reach=True) < counted
    assert counted < ghosts.lammps_ghosts(GAS_ATOMS, lengths, ranks, reach, within_reach=True)
    facts = advise.model_facts({"label": "lj", "path": str(lj_model)})
    assert facts["lammps_within_reach"] and facts["shell"]["lammps"] == pytest.approx(reach)


def costs(**overrides):
    values = dict(engine="lammps", atoms=1000, lengths=(25.0, 25.0, 25.0), shell=11.0,
                  ranks=2, one_rank_ms=100.0, serial_ms=0.0, ranks_ms=0.0, best_ms=100.0)
    values.update(overrides)
    made = ghosts.RankCosts(**values)
    if not values["ranks_ms"]:
        # a rank's step: half the one-rank work plus 0.1 ms per ghost (a local
        # atom's cost: 100 ms / 1000 atoms)
        made.ranks_ms = 50.0 + 0.1 * made.ghosts(made.atoms)
    return made


def test_ghost_cost_is_what_the_ranks_paid_beyond_their_share():
    made = costs()
    assert made.ghost_ms == pytest.approx(0.1)
    assert made.predicted_ranks_ms(made.atoms) == pytest.approx(made.ranks_ms)


def test_crossover_is_where_the_ranks_become_faster():
    made = costs()
    found = ghosts.crossover(made)
    assert found.atoms > made.atoms  # at 1000 atoms the ghosts dominate
    assert made.predicted_ranks_ms(found.atoms * 1.01) < made.predicted_best_ms(found.atoms * 1.01)
    assert made.predicted_ranks_ms(found.atoms / 1.01) > made.predicted_best_ms(found.atoms / 1.01)
    ghost_count = made.ghosts(found.atoms)
    assert found.ghost_share_threshold == pytest.approx(
        ghost_count / (found.atoms / 2 + ghost_count))
    # a ghost costs what a local atom does
    assert found.ghost_cost_ratio == pytest.approx(1.0)


def test_fixed_extra_keeps_a_ghost_at_most_a_local_atom():
    # the ranks paid 0.2 ms per ghost: as a fixed cost, a ghost costs a local
    # atom (0.1 ms) and the rest is per step; both reproduce the measurement
    made = costs(ranks_ms=0.0)
    made.ranks_ms = 50.0 + 0.2 * made.ghosts(made.atoms)
    made.extra = ghosts.EXTRA_FIXED
    assert made.ghost_ms == pytest.approx(0.1)
    assert made.fixed_ms == pytest.approx(0.1 * made.ghosts(made.atoms))
    assert made.predicted_ranks_ms(made.atoms) == pytest.approx(made.ranks_ms)
    fixed = ghosts.crossover(made).atoms
    made.extra = ghosts.EXTRA_PER_GHOST
    assert made.predicted_ranks_ms(made.atoms) == pytest.approx(made.ranks_ms)
    assert fixed < ghosts.crossover(made).atoms  # a fixed cost fades sooner


def test_ranks_never_pay_when_threads_already_split_the_work():
    # one rank with two threads as fast as two ghost-free ranks: nothing left to win
    assert ghosts.crossover(costs(best_ms=50.0)).atoms is None


def test_serial_part_stays_on_every_rank_count():
    made = costs(engine="ipi", serial_ms=20.0, ranks_ms=70.0)
    # 20 serial + 80/2 parallel = 60: 10 ms left for the ghosts
    assert made.ghost_ms * made.ghosts(made.atoms) == pytest.approx(10.0)


def test_advise_end_to_end(tmp_path):
    """A short run of every engine on 1x1 and 2x1: every row measured, the
    threads seen as asked, ghosts counted, the recommendation the fastest
    option with its command lines, and --render giving the same report."""
    output = tmp_path / "out"
    code = main(["advise", "lj", "--atoms", "256", "--layouts", "1x1", "2x1", "--settings",
                 "turbo", "--budget", "0.2", "--repeats", "1", "--warmup", "1", "--output",
                 str(output), "--no-progress"])
    assert code == 0
    record = json.loads((output / "advise.json").read_text())
    rows = [r for r in record["rows"] if r["engine"] != "raw"]
    assert {(r["engine"], r["ranks"]) for r in rows} == {
        ("lammps", 1), ("lammps", 2), ("ipi", 1), ("ipi", 2)}
    for row in record["rows"]:
        assert row["status"] == "ok", row
        assert row["threads_seen"] == [1] * row["ranks"], row
    for row in rows:
        if row["ranks"] == 2:
            assert row["ghosts_per_rank"] > 0
    text = (output / "advise.md").read_text()
    for engine in ("lammps", "ipi"):
        best = advise_report.options(record["rows"], engine)[0]
        assert best["ms_per_step"] == min(r["ms_per_step"] for r in rows if r["engine"] == engine)
        lines = advise_report.commands(record, best)
        assert ("-np 2" in " ".join(lines)) == (best["ranks"] == 2)
        assert all(line in text for line in lines)
    assert text.count("2 ranks x 1 thread") == 2  # the crossover line of each engine
    assert main(["advise", "--render", str(output / "advise.json"), "--output",
                 str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "advise.md").read_text() == text


def lammps_commands(species, type_order=None, structure=None):
    """advise's LAMMPS lines for a measured system of ``species`` (its data file's
    type order) and, if known, the user's own type order (from ``structure``)."""
    record = {"plan": {"model": "mace", "structure": structure},
              "system": {"species": species, "type_order": type_order}}
    row = {"engine": "lammps", "settings_values": {"preset": "turbo"}, "threads": 1,
           "ranks": 2, "settings": "turbo"}
    return advise_report.commands(record, row)


def test_pair_coeff_line_spells_out_the_type_order():
    """The measured data file has types in the model's order (Al Cu for the
    shipped MACE), the reverse of examples/lammps/in.md: the line says which
    element each type is, so that a pasted line cannot swap them silently."""
    lines = lammps_commands(["Al", "Cu"])
    coeff = [line for line in lines if line.startswith("pair_coeff")]
    assert coeff == ["pair_coeff * * Al Cu   # type 1 = Al, type 2 = Cu: list YOUR data "
                     "file's types in its order"]
    assert not any("BLAS" in line or "preloaded" in line for line in lines)


def test_pair_coeff_line_follows_the_users_data_file(tmp_path):
    import ase.io

    from mlipdrive.bench.advise import user_type_order
    from structures import copper_aluminium

    path = tmp_path / "system.lammps-data"
    ase.io.write(path, copper_aluminium(), format="lammps-data", specorder=["Cu", "Al"],
                 masses=True, units="metal")
    assert user_type_order(str(path)) == ["Cu", "Al"]
    copper_aluminium().write(tmp_path / "system.xyz")
    assert user_type_order(str(tmp_path / "system.xyz")) is None
    lines = lammps_commands(["Al", "Cu"], ["Cu", "Al"], str(path))
    assert [line for line in lines if line.startswith("pair_coeff")] == [
        f"pair_coeff * * Cu Al   # type 1 = Cu, type 2 = Al, as in {path}"
    ]
