"""The soak in short (``make test``): ``mlipdrive bench soak`` for 300 steps of
the shipped MACE (turbo, 108 atoms) through LAMMPS, restarted midway, and i-PI,
whose client is stopped and replaced midway; the same checks as the long run
(benchmarks/results/soak): flat memory, energy conserved across the restart,
every record present. Step time (wall clock and CPU time) is recorded, not judged:
unit tests time nothing.
"""

import json

import pytest

from mlipdrive.bench.soak_report import MEMORY_GROWTH_LIMIT
from mlipdrive.cli import main
from mlipdrive.ipi import EXIT_OK, EXIT_TERMINATED

STEPS, EVERY = 300, 50
# eV/atom/ps: this run measured ~1e-5 (turbo, float32, 1 fs); wrong forces or a
# lost step at the restart give orders of magnitude more
DRIFT_LIMIT = 1e-4
# eV/atom: the same positions and velocities after read_restart; the float32
# energy may differ by the order of its sums (ghosts are rebuilt), ~1e-7 relative
RESTART_JUMP_LIMIT = 1e-6


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    output = tmp_path_factory.mktemp("soak")
    code = main(["bench", "soak", "--steps", str(STEPS), "--every", str(EVERY), "--output",
                 str(output), "--keep-work", "--quiet"])
    record = json.loads((output / "soak.json").read_text())
    assert code == 0, {engine: run.get("error") for engine, run in record["runs"].items()}
    return output, record


@pytest.mark.parametrize("engine", ["lammps", "ipi"])
def test_every_record_and_flat_memory(soak, engine):
    _, record = soak
    run = record["runs"][engine]
    steps = sorted({r["step"] for r in run["records"]})
    assert steps == list(range(0, STEPS + 1, EVERY))
    summary = run["summary"]
    assert summary["memory"]["largest_segment_growth"] < MEMORY_GROWTH_LIMIT, summary["memory"]
    assert summary["memory_flat"] is True
    assert abs(summary["drift_ev_per_atom_ps"]) < DRIFT_LIMIT
    assert all(b["ms_per_step"] > 0 for b in run["blocks"])
    # the model's process did the work: its CPU time per step is seen in every block
    assert all(b["cpu_ms_per_step"] > 0 for b in run["blocks"] if not b["restart"])


def test_lammps_restart_loads_the_model_again_and_continues(soak):
    output, record = soak
    run = record["runs"]["lammps"]
    log = (output / "work" / "lammps" / "log.lammps").read_text()
    assert log.count("mlipdrive: model ") == 2  # loaded from the input, then from the restart
    half = record["spec"]["steps"] // 2
    at_half = [r for r in run["records"] if r["step"] == half]
    assert [r["segment"] for r in at_half] == [0, 1]
    assert run["summary"]["restart_energy_jump_ev_per_atom"] < RESTART_JUMP_LIMIT


def test_ipi_client_is_replaced_and_the_run_goes_on(soak):
    output, record = soak
    work = output / "work" / "ipi"
    first, second = (work / "client0.txt").read_text(), (work / "client1.txt").read_text()
    assert "terminated (SIGTERM)" in first
    assert "i-PI sent EXIT" in second
    run = record["runs"]["ipi"]
    assert run["client_exit_codes"] == [EXIT_TERMINATED, EXIT_OK]
    assert {r["segment"] for r in run["records"]} == {0, 1}
    assert len(run["summary"]["memory"]["segments"]) == 2  # each client's own memory
    assert (output / "soak.png").stat().st_size > 0
