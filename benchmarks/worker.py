"""Run in-process benchmark rows in this process: ``python -m mlipdrive.bench.worker
ROWS.json RESULTS.jsonl``.

The harness starts one worker per group of rows that may share a process (same
model settings, so the same process-wide torch switches), under ``mpirun`` when
the rows need several ranks. Each finished row appends one JSON line to
RESULTS.jsonl (rank 0 only), which the harness follows for its progress
display. A failing row is recorded with its error and the next one runs.
"""

import json
import pathlib
import sys
import time
import traceback


def run_rows(rows_path: str, results_path: str) -> int:
    from .engines import ENGINES
    from .matrix import Row
    from .measure import peak_rss_mb, reset_peak_rss

    rank = _mpi_rank()
    rows = [Row.from_dict(data) for data in json.loads(pathlib.Path(rows_path).read_text())]
    workdir = pathlib.Path(results_path).parent
    for row in rows:
        reset_peak_rss()
        start = time.perf_counter()
        record = {"index": row.index}
        try:
            measured = ENGINES[row.engine].runner()(row, workdir)
            record.update(status="ok", **(measured or {}))
        except Exception as error:  # noqa: BLE001 -- recorded, the next row runs
            record.update(
                status="failed",
                error=f"{type(error).__name__}: {error}",
                traceback=traceback.format_exc(),
            )
            if rank != 0:
                # rank 0 records the row; a failure here would otherwise be silent
                print(f"mlipdrive bench worker, MPI rank {rank}: {record['error']}\n"
                      f"{record['traceback']}", file=sys.stderr, flush=True)
        record["peak_rss_mb"] = peak_rss_mb()
        record["wall_s"] = time.perf_counter() - start
        if rank == 0:
            with open(results_path, "a") as file:
                file.write(json.dumps(record) + "\n")
    return 0


def _mpi_rank() -> int:
    """This process's rank when started by mpirun (without initialising MPI)."""
    import os

    for variable in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m mlipdrive.bench.worker ROWS.json RESULTS.jsonl", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_rows(sys.argv[1], sys.argv[2]))
