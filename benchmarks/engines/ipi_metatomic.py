"""Reference: i-PI's own metatomic driver, ``i-pi-py_driver -m metatomic``, with
its defaults (the model as exported, no consistency checks), against the same
i-PI server input and transport as our client (see ``_ipi.py``)."""

import os
import pathlib

from ..matrix import Row
from . import _ipi, executable


#: i-pi-py_driver's options for each transport ('{address}': the socket name)
_WHERE = {"unix": ["-u", "-a", "{address}"], "shm": ["--shm", "-a", "{address}"],
          "ffmpi": ["--mpi"]}


def client_command(row: Row, transport: str = "unix") -> list:
    options = f"template=init.extxyz,model={row.model_path}"
    if row.device != "cpu":
        options += f",device={row.device}"
    return [executable("i-pi-py_driver"), *_WHERE[transport], "-m", "metatomic",
            "-o", options]


def run(row: Row, workdir: pathlib.Path, transport: str = "unix") -> dict:
    env = dict(os.environ)
    # torch's intra-op threads follow OMP_NUM_THREADS in a fresh process
    env["OMP_NUM_THREADS"] = str(row.threads)
    result = _ipi.run(row, workdir, client_command(row, transport), env,
                      transport=transport)
    result["split_ms"] = {}
    return result
