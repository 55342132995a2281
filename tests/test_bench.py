"""The benchmark harness (``mlipdrive bench``): its pieces on fixed inputs, then
``--quick`` end to end as a smoke test. No timing is asserted anywhere: only
that every figure is produced and consistent."""

import json
import math
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

from mlipdrive.bench import measure, report, runner, systems
from mlipdrive.bench.engines import ENGINES, _ipi, _lammps, select
from mlipdrive.bench.matrix import REFERENCE, Row, parse_settings

# ------------------------------------------------------------------ systems


@pytest.mark.parametrize("target, expected", [(100, 108), (1000, 1008), (8000, 8112)])
def test_sizes_replicate_the_cubic_fcc_cell(target, expected):
    repeats = systems.choose_repeats(np.eye(3) * 3.8, 4, target)
    assert 4 * math.prod(repeats) == expected
    assert max(repeats) - min(repeats) <= 1  # as cubic as the count allows


def test_system_has_the_alloy_and_thermal_velocities():
    atoms = systems.build(systems.CUAL, 100, seed=3)
    assert len(atoms) == 108
    assert sorted(set(atoms.get_chemical_symbols())) == ["Al", "Cu"]
    assert abs((atoms.numbers == 29).sum() - 54) == 0
    assert np.allclose(atoms.get_momenta().sum(axis=0), 0.0, atol=1e-10)
    assert 150 < atoms.get_temperature() < 450
    again = systems.build(systems.CUAL, 100, seed=3)
    assert np.array_equal(atoms.positions, again.positions)  # seeded


def test_system_files(tmp_path):
    atoms = systems.build(systems.CUAL, 30, seed=0)
    species = systems.species(atoms, [13, 29])
    assert species == ["Al", "Cu"]
    path = systems.write(atoms, tmp_path, species)
    data = (tmp_path / "system.data").read_text()
    assert "Velocities" in data and "Masses" in data
    import ase.io

    back = ase.io.read(path)
    assert np.allclose(back.get_velocities(), atoms.get_velocities())


# ------------------------------------------------------------------ matrix


def test_settings_items():
    assert parse_settings("turbo", 1) == ("turbo", {"preset": "turbo", "threads": "1"})
    label, values = parse_settings("preset=turbo,dtype=float64", 2)
    assert label == "preset=turbo,dtype=float64"
    assert values == {"preset": "turbo", "dtype": "float64", "threads": "2"}
    assert parse_settings("threads=4", 1)[1]["threads"] == "4"
    with pytest.raises(ValueError, match="unknown settings 'fast'"):
        parse_settings("fast", 1)
    with pytest.raises(ValueError, match="unknown setting"):
        parse_settings("dtyp=float32", 1)
    with pytest.raises(ValueError, match="must be one of"):
        parse_settings("dtype=float16", 1)


def test_row_round_trip_and_load_settings():
    row = Row(engine="raw", model="m", model_path="/m.pt", system="s", atoms=4,
              structure="/s.extxyz", species=["Ar"], settings="x",
              settings_values={"preset": "turbo", "dtype": "float64", "threads": "2"})
    assert Row.from_dict(json.loads(json.dumps(row.to_dict()))) == row
    assert row.settings_for_load() == {"preset": "turbo", "dtype": "float64", "threads": 2}


def test_engine_selection():
    assert [e.name for e in select(["lammps", "raw"])] == ["raw", "lammps"]
    with pytest.raises(ValueError, match="unknown engine"):
        select(["gromacs"])
    for engine in ENGINES.values():
        assert engine.role in ("floor", "ours", "reference")
        if not engine.settings:
            assert engine.role == "reference"


# ------------------------------------------------------------------ measurements


def test_summary_figures():
    figures = measure.summary([2.0, 4.0, 3.0], atoms=100, timestep_fs=2.0)
    assert figures["ms_per_step"] == 3.0
    assert figures["steps_per_s"] == pytest.approx(1000 / 3)
    assert figures["ns_per_day"] == pytest.approx(1000 / 3 * 86400 * 2e-6)
    assert figures["atom_steps_per_s"] == pytest.approx(100 * 1000 / 3)
    assert figures["spread_ms"] == pytest.approx(1.0)
    assert measure.summary([5.0], 1, 1.0)["spread_ms"] == 0.0


def test_rounds_pool_repeats_and_run_in_turn():
    first = {"status": "ok", "repeat_ms": [1.0, 2.0], "split_ms": {"model": 1.0}, "wall_s": 1.0}
    later = {"status": "ok", "repeat_ms": [9.0], "split_ms": {"model": 5.0}, "wall_s": 2.0}
    pooled = runner.pool_rounds(first, later)
    assert pooled["repeat_ms"] == [1.0, 2.0, 9.0] and pooled["rounds"] == 2
    assert pooled["split_ms"] == {"model": 1.0} and pooled["wall_s"] == 3.0
    failed = {"status": "failed", "error": "boom"}
    assert runner.pool_rounds(first, failed) is failed
    assert runner.pool_rounds(failed, first) is failed

    rows = [Row(index=i, engine=engine, model="lj", model_path="lj.pt", system="Ar",
                atoms=atoms, structure="s.xyz", species=["Ar"], settings="default",
                settings_values={"preset": "default"})
            for i, (engine, atoms) in enumerate([("raw", 100), ("lammps", 100), ("raw", 1000)])]
    order = [[row.index for row in batch] for batch in runner._batches(rows, True, rounds=2)]
    assert order == [[0], [1], [0], [1], [2], [2]]


def test_drift_is_the_slope_per_atom():
    times = [0.0, 0.1, 0.2, 0.2, 0.3]  # a repeated point at a run boundary
    energies = [10.0, 10.5, 11.0, 11.0, 11.5]
    assert measure.drift(times, energies, atoms=5) == pytest.approx(1.0)
    assert measure.drift([0.0, 0.1], [1.0, 2.0], 1) is None


def test_peak_memory_of_a_child_process(tmp_path):
    # ~200 MB in the child; the harness process's own memory must not leak in
    code = "import numpy; a = numpy.ones(25_000_000); import time; time.sleep(0.5)"
    result = measure.run_process([sys.executable, "-c", code], cwd=tmp_path, env=None,
                                 stdout_path=tmp_path / "out.txt", timeout=60)
    assert result.returncode == 0 and not result.timed_out
    assert 150 < result.peak_rss_mb < 400


def test_time_limit_kills_the_process_group(tmp_path):
    result = measure.run_process(["sleep", "30"], cwd=tmp_path, env=None,
                                 stdout_path=tmp_path / "out.txt", timeout=0.5)
    assert result.timed_out
    assert result.wall_s < 10


LAMMPS_LOG = """\
   Step         PotEng         KinEng         TotEng    
         0  -8.3264017      1.206735      -7.1196666    
         2  -8.3256662      1.2059996     -7.1196666    
Loop time of 0.288605 on 1 procs for 2 steps with 108 atoms

mlipdrive: 3 evaluations on rank 0, ms per evaluation: system 4.747, forward 156.540, backward 12.924, forces/virial 2.797

MPI task timing breakdown:
Section |  min time  |  avg time  |  max time  |%varavg| %total
---------------------------------------------------------------
Pair    | 0.28844    | 0.28844    | 0.28844    |   0.0 | 99.94
Neigh   | 0          | 0          | 0          |   0.0 |  0.00
Comm    | 2.5873e-05 | 2.5873e-05 | 2.5873e-05 |   0.0 |  0.01
Output  | 0.00010175 | 0.00010175 | 0.00010175 |   0.0 |  0.04
Modify  | 1.3292e-05 | 1.3292e-05 | 1.3292e-05 |   0.0 |  0.00
Other   |            | 2.236e-05  |            |       |  0.01
Per MPI rank memory allocation (min/avg/max) = 3.105 | 3.105 | 3.105 Mbytes
   Step         PotEng         KinEng         TotEng    
         2  -8.3256662      1.2059996     -7.1196666    
        12  -8.3250233      1.2053567     -7.1196660    
Loop time of 0.05 on 1 procs for 10 steps with 108 atoms

mlipdrive: 11 evaluations on rank 0, ms per evaluation: system 1.0, forward 2.0, backward 1.0, forces/virial 0.1

Section |  min time  |  avg time  |  max time  |%varavg| %total
Pair    | 0.045      | 0.045      | 0.045      |   0.0 | 90.00
Neigh   | 0.001      | 0.001      | 0.001      |   0.0 |  2.00
Comm    | 0.002      | 0.002      | 0.002      |   0.0 |  4.00
Output  | 0.001      | 0.001      | 0.001      |   0.0 |  2.00
Modify  | 0.0005     | 0.0005     | 0.0005     |   0.0 |  1.00
Other   |            | 0.0005     |            |       |  1.00
"""


def test_lammps_log():
    parsed = _lammps.parse_log(LAMMPS_LOG, 108)
    first, second = parsed["runs"]
    assert (first["steps"], second["steps"]) == (2, 10)
    assert second["seconds"] == 0.05
    assert second["thermo"][-1] == [12, -8.3250233, 1.2053567, -7.119666]
    assert second["plugin"] == {"n": 11, "system": 1.0, "forward": 2.0, "backward": 1.0,
                                "store": 0.1}
    assert second["sections"]["Other"] == 0.0005
    assert parsed["memory_mb"] == 3.105
    split = _lammps._split([second], 10)
    assert split["forward"] == 2.0 and split["backward"] == 1.0
    assert split["driver"] == pytest.approx(1.0 + 0.1)  # System, then forces/virial
    assert split["communication"] == pytest.approx(0.2)
    assert split["engine"] == pytest.approx(0.2)  # Modify + Output + Other
    assert split["neighbors"] == pytest.approx(0.1)


def test_ipi_outputs(tmp_path):
    (tmp_path / "server.txt").write_text(
        " @simulation.run: Average timings at MD step       0. t/step: 7.95124e-02\n"
        " @interfacesocket.dispatch_free_client: something\n"
        " @simulation.run: Average timings at MD step       1. t/step: 5.0e-03\n"
    )
    assert _ipi.parse_step_times(tmp_path / "server.txt") == {0: 0.0795124, 1: 0.005}
    (tmp_path / "sim.out").write_text(
        "# column   1     --> step\n0 0.0 -7.1 -8.3\n1 0.001 -7.1 -8.2\n"
    )
    assert _ipi.parse_properties(tmp_path / "sim.out")[1] == (1, 0.001, -7.1, -8.2)
    xml = _ipi.input_xml(
        Row(engine="ipi", model="m", model_path="/m.pt", system="s", atoms=4,
            structure="/s.extxyz", species=["Ar"], settings="default",
            settings_values={}, timestep_fs=0.5, temperature_k=80.0),
        "name", 42, "init.extxyz",
    )
    assert "<total_steps> 42 </total_steps>" in xml and "verbosity='high'" in xml
    assert "<timestep units='femtosecond'> 0.5 </timestep>" in xml


# ------------------------------------------------------------------ reports


def _row(engine, settings, ranks, atoms, ms, **extra):
    figures = measure.summary([ms, ms * 1.1], atoms, 1.0)
    return {
        "engine": engine, "role": ENGINES[engine].role, "model": "mace-cual",
        "system": "CuAl", "atoms": atoms, "settings": settings, "settings_values": {},
        "ranks": ranks, "threads": 1, "device": "cpu", "timestep_fs": 1.0,
        "repeats": 2, "warmup": 2, "steps": 10, "status": "ok",
        "split_ms": {"forward": ms / 3, "backward": ms / 2}, "peak_rss_mb": 500.0,
        "energy0_per_atom": -3.0, "drift_ev_per_atom_ps": 1e-5, **figures, **extra,
    }


def _record():
    rows = []
    for atoms, scale in ((108, 1.0), (1008, 9.0)):
        for settings, factor in (("default", 1.0), ("turbo", 0.4)):
            ms = scale * factor
            rows += [
                _row("raw", settings, 1, atoms, ms),
                _row("lammps", settings, 1, atoms, ms * 1.05),
                _row("lammps", settings, 2, atoms, ms * 0.6),
                _row("ipi", settings, 1, atoms, ms * 1.2),
            ]
        rows.append(_row("ipi-metatomic", REFERENCE, 1, atoms, scale * 2.0))
    rows.append({"engine": "lammps-lj", "model": "mace-cual", "atoms": 108,
                 "settings": REFERENCE, "ranks": 1, "status": "skipped",
                 "reason": "LJ model only"})
    record = {
        "created": "2026-01-01T00:00:00+00:00", "wall_s": 12.0,
        "command": "mlipdrive bench --test",
        "options": {"threads": 1, "device": "cpu", "timestep_fs": 1.0, "repeats": 2,
                    "warmup": 2},
        "machine": {"cpu": "test cpu", "cores": 2, "memory_gib": 8, "gpu": None,
                    "load_average": [0.1, 0.1, 0.1], "load_average_end": [0.2, 0.1, 0.1]},
        "git": {"commit": "0123456789abcdef", "branch": "main", "dirty": False},
        "versions": {"torch": "2.13.0"},
        "engines": {name: {"role": e.role, "description": e.description}
                    for name, e in ENGINES.items()},
        "rows": rows,
    }
    record["targets"] = report.targets(record)
    return record


def test_targets_from_rows():
    found = {t["target"]: t for t in _record()["targets"]}
    turbo = found["turbo / default steps/s, LAMMPS, mace-cual, 1008 atoms"]
    assert turbo["value"] == pytest.approx(2.5) and turbo["met"] is True
    overhead = found["LAMMPS ms/step / raw model ms/step, mace-cual, default, 1008 atoms"]
    assert overhead["value"] == pytest.approx(1.05) and overhead["met"] is True
    small = [t for t in found.values() if "108 atoms (below 1000" in t["target"]]
    assert small and all(t["met"] is None for t in small)
    ipi = found["i-PI steps/s, our client (default) / i-pi-py_driver, mace-cual, 108 atoms"]
    assert ipi["value"] == pytest.approx(2.0 / 1.2) and ipi["met"] is True


def test_targets_at_other_sizes_are_not_judged():
    """A --quick run (108 atoms) shows the targets defined at ~1000 atoms, not judged."""
    record = _record()
    record["rows"] = [row for row in record["rows"] if row["atoms"] == 108]
    found = report.targets(record)
    turbo = [t for t in found if t["target"].startswith("turbo / default")]
    assert turbo and all(t["met"] is None and f"~{report.TURBO_ATOMS} atoms" in t["goal"]
                         for t in turbo)
    assert not [t for t in found if t["met"] is False]


def test_markdown_and_plots(tmp_path):
    from mlipdrive.bench import plots

    record = _record()
    text = report.markdown(record)
    assert "## mace-cual (CuAl)" in text and "## Targets" in text
    table = [line for line in text.splitlines() if line.startswith("| 1008 | lammps |")]
    assert len(table) == 4  # default, turbo × 1, 2 ranks
    assert all(line.count("|") == 14 for line in table)
    assert "lammps-lj mace-cual 108 atoms reference np=1: skipped: LJ model only" in text
    for path in plots.write_all(record, tmp_path):
        _check_png(path)


def _check_png(path: pathlib.Path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200, path


# ------------------------------------------------------------------ smoke test


def test_quick_run(tmp_path):
    """``mlipdrive bench --quick``: every engine that can run here, end to end."""
    output = tmp_path / "out"
    process = subprocess.run(
        [sys.executable, "-m", "mlipdrive.bench", "--quick", "--output", str(output),
         "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    record = json.loads((output / "bench.json").read_text())
    failed = [f"{r['engine']} {r['settings']} np={r['ranks']}: {r.get('error')}"
              for r in record["rows"] if r["status"] == "failed"]
    assert not failed, "\n".join(failed)
    assert process.returncode == 0, process.stderr[-3000:]

    assert record["schema"] == "mlipdrive-bench/1"
    assert record["git"]["commit"] and record["versions"]["torch"]
    assert record["machine"]["cores"] >= 1
    ok = [r for r in record["rows"] if r["status"] == "ok"]
    engines = {r["engine"] for r in ok}
    assert {"raw", "driver", "ase", "metatomic-ase"} <= engines
    for name in engines:
        assert ENGINES[name].unavailable() == ""
    for row in ok:
        assert row["atoms"] == 108
        assert len(row["repeat_ms"]) == row["repeats"] == 2
        assert row["ms_per_step"] > 0
        assert row["steps_per_s"] == pytest.approx(1000 / row["ms_per_step"])
        assert row["ns_per_day"] == pytest.approx(row["steps_per_s"] * 86400e-6)
        assert row["peak_rss_mb"] is None or row["peak_rss_mb"] > 10
        if row["nve"]:
            assert row["drift_ev_per_atom_ps"] is not None
            assert abs(row["drift_ev_per_atom_ps"]) < 0.1  # eV/atom/ps: it is NVE
        # every engine starts from the same structure: same initial energy
        assert row["energy0_per_atom"] == pytest.approx(
            ok[0]["energy0_per_atom"], abs=1e-6
        )
    assert any(r["ranks"] == 2 for r in ok)

    text = (output / "bench.md").read_text()
    assert "## lj-argon (argon)" in text
    section = text.split("## lj-argon (argon)", 1)[1].split("\n## ", 1)[0]
    assert sum(line.startswith("| 108 |") for line in section.splitlines()) == len(ok)
    for name in ("ms_per_step.png", "turbo_speedup.png", "rank_scaling.png"):
        _check_png(output / name)
