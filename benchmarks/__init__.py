"""``mlipdrive.bench``: the MD benchmark harness behind ``mlipdrive bench``.

One command runs a matrix of rows, engines × models × system sizes × inference
settings × MPI ranks, and writes a JSON record, a markdown table and PNG plots
(see ``benchmarks/README.md``). In Python::

    from mlipdrive.bench import Options, run
    result = run(Options(models=("lj",), sizes=(100,), engines=("raw", "lammps")))

Modules, one job each: :mod:`~mlipdrive.bench.systems` (structures),
:mod:`~mlipdrive.bench.models`, :mod:`~mlipdrive.bench.matrix` (rows),
:mod:`~mlipdrive.bench.engines` (one module per engine),
:mod:`~mlipdrive.bench.measure` (timing, memory, drift),
:mod:`~mlipdrive.bench.runner`, :mod:`~mlipdrive.bench.worker` (in-process rows),
:mod:`~mlipdrive.bench.progress`, :mod:`~mlipdrive.bench.report`,
:mod:`~mlipdrive.bench.plots`, :mod:`~mlipdrive.bench.environment`,
:mod:`~mlipdrive.bench.cli`.
"""

from .runner import Options, run

__all__ = ["Options", "run"]
