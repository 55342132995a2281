"""Our i-PI client, ``mlipdrive ipi``, against a real i-PI server (serial, or
``mpirun -np N`` with the spatial domain decomposition), over one of i-PI's
transports (see ``_ipi.py``)."""

import pathlib
import re

from ..matrix import Row
from . import _ipi, executable

# 'i-PI sent EXIT; N evaluations; per evaluation: model X ms, client overhead Y ms,
# waiting for i-PI Z ms' (mlipdrive ipi --timings)
_TIMINGS = re.compile(
    r"(\d+) evaluations; per evaluation: model (\S+) ms, client overhead (\S+) ms, "
    r"waiting for i-PI (\S+) ms"
)


#: the client's options for each transport ('{address}': the harness's socket name)
_WHERE = {"unix": ["--unix", "{address}"], "shm": ["--unix", "{address}", "--shm"],
          "ffmpi": ["--ffmpi"]}


def client_command(row: Row, transport: str = "unix") -> list:
    values = dict(row.settings_values)
    command = [
        executable("mlipdrive"), "ipi", "--model", row.model_path,
        "--structure", "init.extxyz", *_WHERE[transport], "--timings",
        "--settings", values.pop("preset", "default"), "--device", row.device,
    ]
    for key, value in values.items():
        command += ["--" + key.replace("_", "-"), value]
    if row.ranks > 1:
        command = [executable("mpirun"), "-np", str(row.ranks)] + command
    return command


def run(row: Row, workdir: pathlib.Path, transport: str = "unix") -> dict:
    from mlipdrive import lammps

    env = lammps.lmp_environment()  # the mpich wheel's library path, for mpirun
    env["OMP_NUM_THREADS"] = str(row.threads)
    # our client waits for the server with back-off: start both at once
    result = _ipi.run(row, workdir, client_command(row, transport), env,
                      client_retries=True, transport=transport)
    result["split_ms"] = _split(result, (workdir / "client.txt").read_text(errors="replace"),
                                row.beads)
    return result


def _split(result: dict, client_log: str, beads: int = 1) -> dict:
    """The client's own accounting: time in the model and its overhead outside
    it (protocol, copies, units: 'driver'), per evaluation times ``beads`` (one
    evaluation per bead and step); the rest of i-PI's step is i-PI's ('engine':
    integrator, output, transport). The client averages over all its
    evaluations, warm-up included, so 'model' leans high for short runs of
    models whose first calls are slow."""
    match = _TIMINGS.search(client_log)
    if not match:
        return {}
    model, overhead = beads * float(match.group(2)), beads * float(match.group(3))
    step = sum(result["repeat_ms"]) / len(result["repeat_ms"])
    return {"model": model, "driver": overhead, "engine": max(step - model - overhead, 0.0)}
