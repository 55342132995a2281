"""The engines a benchmark row can run, one module each.

Every engine module has ``run(row, workdir) -> dict`` returning the measured
figures (see :mod:`mlipdrive.bench.engines._result`). In-process engines run
inside a worker process (``python -m mlipdrive.bench.worker``; under ``mpirun``
for several ranks); the others start their own programs (``lmp``, ``i-pi``) from
the harness.

Time split keys, in ms/step, each engine giving what it can see:
``neighbors`` (neighbour search), ``forward``, ``backward`` (the model),
``model`` (forward + backward where they cannot be told apart), ``driver``
(our glue: System construction, unit conversion, socket protocol),
``communication`` (MPI), ``engine`` (integrator and the engine's own work).
"""

import dataclasses
import functools
import importlib
import pathlib
import shutil
import sys
from typing import Callable, Dict, List, Optional

#: roles, in report order
FLOOR, OURS, REFERENCE = "floor", "ours", "reference"


@dataclasses.dataclass(frozen=True)
class Engine:
    """One engine of the matrix."""

    name: str
    role: str  # FLOOR, OURS or REFERENCE
    description: str
    module: str  # module (under mlipdrive.bench.engines) with run(row, workdir)
    in_process: bool  # runs inside a worker process
    mpi: bool = False  # can run on several MPI ranks
    settings: bool = True  # honours the inference settings (else: as exported)
    md: bool = True  # NVE dynamics: reports the energy drift
    lj_only: bool = False  # only for our exact LJ model
    #: the engine this one is compared with in the report (same model and atoms)
    compare_to: str = ""
    #: returns '' when the engine can run here, else why not and how to fix it
    check: Optional[Callable[[], str]] = None
    #: i-PI engines: the transport (``_ipi.TRANSPORTS``), given to the module's run
    transport: str = ""

    def unavailable(self) -> str:
        return self.check() if self.check is not None else ""

    def runner(self):
        run = importlib.import_module(f"{__name__}.{self.module}").run
        return functools.partial(run, transport=self.transport) if self.transport else run


def _executable(name: str) -> Optional[str]:
    candidate = pathlib.Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def executable(name: str) -> str:
    """``name`` next to this Python (the venv's bin), else on PATH."""
    found = _executable(name)
    if found is None:
        raise FileNotFoundError(f"'{name}' is neither next to {sys.executable} nor on PATH")
    return found


def _check_modules(*names: str) -> str:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 -- any import failure means 'missing'
            return f"cannot import {name} ({type(error).__name__}: {error})"
    return ""


def _check_executables(*names: str) -> str:
    missing = [name for name in names if _executable(name) is None]
    if missing:
        return f"{', '.join(missing)} not found next to {sys.executable} nor on PATH"
    return ""


def _check_lammps() -> str:
    problem = _check_modules("mlipdrive.lammps")
    if problem:
        return problem + " (the LAMMPS plugin is not in this tree yet)"
    from mlipdrive import lammps

    try:
        lammps.lmp_binary()
        lammps.plugin_path()
    except (FileNotFoundError, OSError) as error:
        return str(error)
    return ""


def _check_lmp() -> str:
    try:
        from mlipdrive import lammps

        lammps.lmp_binary()
    except Exception as error:  # noqa: BLE001
        return f"no LAMMPS binary: {error}"
    return ""


def _check_ours_ipi() -> str:
    return _check_executables("i-pi", "mlipdrive") or _check_modules(
        "mlipdrive.ipi", "mlipdrive.ipi.command"
    )


def _ipi_transport_engines() -> List[Engine]:
    """Our client and i-PI's own driver over i-PI 3.3's other transports (one
    client, one rank each)."""
    engines = []
    for transport, words in (("shm", "a UNIX socket + shared memory (mode='shm')"),
                             ("ffmpi", "MPI in one mpirun job (<ffmpi>)")):
        engines += [
            Engine(f"ipi-{transport}", OURS,
                   f"i-PI server (NVE) + mlipdrive's client (mlipdrive ipi) over {words}",
                   "ipi_mlipdrive", in_process=False, compare_to=f"ipi-metatomic-{transport}",
                   check=_check_ours_ipi, transport=transport),
            Engine(f"ipi-metatomic-{transport}", REFERENCE,
                   f"i-PI server (NVE) + i-PI's own driver (i-pi-py_driver -m metatomic) "
                   f"over {words}", "ipi_metatomic", in_process=False, settings=False,
                   check=lambda: _check_executables("i-pi", "i-pi-py_driver"),
                   transport=transport),
        ]
    return engines


ENGINES: Dict[str, Engine] = {
    engine.name: engine
    for engine in [
        Engine(
            "raw", FLOOR,
            "model forward + backward (forces) on a System built beforehand; no engine, "
            "no neighbour search: the floor",
            "raw", in_process=True, md=False,
        ),
        Engine(
            "driver", OURS,
            "mlipdrive's Python core (Potential.compute, Verlet neighbour list) with a "
            "minimal velocity Verlet; MPI ranks through DistributedPotential",
            "driver", in_process=True, mpi=True,
        ),
        Engine(
            "ase", OURS,
            "mlipdrive.ase.MLIPCalculator with ASE's VelocityVerlet",
            "ase_mlipdrive", in_process=True, compare_to="metatomic-ase",
        ),
        Engine(
            "metatomic-ase", REFERENCE,
            "metatomic's own ASE calculator (metatomic_ase.MetatomicCalculator) with "
            "ASE's VelocityVerlet",
            "ase_metatomic", in_process=True, settings=False,
            check=lambda: _check_modules("metatomic_ase"),
        ),
        Engine(
            "lammps", OURS,
            "LAMMPS (the lammps wheel's lmp) with pair_style mlipdrive, fix nve",
            "lammps_plugin", in_process=False, mpi=True, compare_to="raw",
            check=_check_lammps,
        ),
        Engine(
            "lammps-lj", REFERENCE,
            "LAMMPS's own pair_style lj/cut (shift yes), same atoms, fix nve",
            "lammps_lj", in_process=False, mpi=True, settings=False, lj_only=True,
            check=_check_lmp,
        ),
        Engine(
            "ipi", OURS,
            "i-PI server (NVE) + mlipdrive's client (mlipdrive ipi) over a UNIX socket",
            "ipi_mlipdrive", in_process=False, mpi=True, compare_to="ipi-metatomic",
            check=_check_ours_ipi,
        ),
        Engine(
            "ipi-metatomic", REFERENCE,
            "i-PI server (NVE) + i-PI's own driver (i-pi-py_driver -m metatomic) over a "
            "UNIX socket",
            "ipi_metatomic", in_process=False, settings=False,
            check=lambda: _check_executables("i-pi", "i-pi-py_driver"),
        ),
        *_ipi_transport_engines(),
    ]
}


def select(names: Optional[List[str]]) -> List[Engine]:
    """The engines called ``names`` (all by default), in registry order."""
    if not names:
        return list(ENGINES.values())
    unknown = [name for name in names if name not in ENGINES]
    if unknown:
        raise ValueError(
            f"unknown engine(s) {unknown}; known: {', '.join(ENGINES)}"
        )
    return [engine for name, engine in ENGINES.items() if name in names]
