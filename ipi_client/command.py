"""``mlipdrive ipi``: drive an i-PI simulation with a model, serial or over MPI.

::

    i-pi input.xml &
    mlipdrive ipi --model model.pt --structure init.xyz --unix NAME
    mlipdrive ipi --model model.pt --structure init.xyz --address HOST --port PORT
    mlipdrive ipi --model model.pt --structure init.xyz --unix NAME --shm
    mpirun -np 4 mlipdrive ipi --model model.pt --structure init.xyz --unix NAME
    mpirun -disable-auto-cleanup -n 1 i-pi input.xml : \
        -n 2 mlipdrive ipi --model model.pt --structure init.xyz --ffmpi

Also ``mlipdrive-ipi-driver``, with the options of i-PI's own ``i-pi-py_driver``::

    mlipdrive-ipi-driver -u -a NAME -m metatomic -o template=init.xyz,model=model.pt
    mlipdrive-ipi-driver --shm -a NAME -m metatomic -o template=init.xyz,model=model.pt
    mpirun -disable-auto-cleanup -n 1 i-pi input.xml : \
        -n 2 mlipdrive-ipi-driver --mpi -m metatomic -o ...

Exit codes: 0 after i-PI's EXIT, 2 bad options or inputs, 3 no server, 4 the
server went away, 5 a malformed message, 6 the model failed, 130 interrupted,
143 terminated (SIGTERM; the connection is closed so that i-PI re-queues the work).
"""

import argparse
import sys

from mlipdrive.cli import (
    add_settings_arguments,
    non_negative_float,
    port_number,
    positive_float,
    settings_from_arguments,
)

from ._client import EXIT_USAGE, log
from ._ffmpi import command_line_errors_end_ffmpi_job, end_ffmpi_job

_EPILOG = (
    "exit codes: 0 EXIT from i-PI, 2 bad options/inputs, 3 no server answered, "
    "4 server went away, 5 malformed message, 6 model failed, 130 interrupted, "
    "143 terminated (SIGTERM). "
    "Periodicity is not sent by i-PI: by default the structure is periodic along "
    "every non-zero lattice vector i-PI sends (--pbc none for a cluster in a box)."
)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "ipi", help="i-PI socket client (serial, or MPI-parallel under mpirun)",
        description=__doc__.split("\n\n")[0], epilog=_EPILOG,
    )
    command_line_errors_end_ffmpi_job(parser, "--ffmpi")
    parser.add_argument("--model", required=True, help="exported metatomic model (.pt)")
    parser.add_argument(
        "--structure", required=True,
        help="structure that initialises i-PI (gives the atom types and their "
        "number; any format ASE reads); with an <activelist>, see --active",
    )
    parser.add_argument(
        "--structure-format", default=None, help="ASE format of --structure (default: guess)"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--unix", metavar="NAME",
        help="UNIX socket: i-PI's <address> (the file is SOCKETS_PREFIX+NAME), or "
        "an absolute path",
    )
    where.add_argument("--port", type=port_number, help="INET socket: i-PI's <port>")
    where.add_argument(
        "--ffmpi", action="store_true",
        help="i-PI's <ffmpi>: no socket, i-PI and this client in one MPI job "
        "('mpirun -disable-auto-cleanup -n 1 i-pi input.xml : -n K mlipdrive ipi ... --ffmpi')",
    )
    parser.add_argument(
        "--address", default="localhost", help="INET host of i-PI (default: localhost)"
    )
    parser.add_argument(
        "--sockets-prefix", default="/tmp/ipi_",
        help="prefix of UNIX socket files, as i-PI's <simulation sockets_prefix> "
        "(default: /tmp/ipi_)",
    )
    add_client_arguments(parser)
    add_transport_arguments(parser)
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def add_transport_arguments(parser):
    """Options of i-PI 3.3's shared-memory and MPI transports, shared by both commands."""
    parser.add_argument(
        "--shm", action="store_true",
        help="i-PI's <ffsocket mode='shm'>: positions and forces through shared memory, "
        "control over the UNIX socket (same machine only)",
    )
    parser.add_argument(
        "-g", "--group-size", type=_positive_int, default=1, metavar="G",
        help="<ffmpi> only: client ranks per structure (default 1: each rank serves "
        "i-PI alone); G > 1 splits each structure into G spatial domains",
    )
    parser.add_argument("--server-rank", type=int, default=0, metavar="R",
                        help="<ffmpi> only: i-PI's rank in the MPI job (default 0)")
    parser.add_argument("--mpi-name", default="", metavar="NAME",
                        help="<ffmpi> only: the name of the <ffmpi> served (needed with "
                        "several <ffmpi>)")
    parser.add_argument("--mpi-id", type=int, default=0, metavar="ID",
                        help="<ffmpi> only: keeps this <ffmpi>'s ranks apart from other "
                        "<ffmpi>'s (needed with several <ffmpi> and G > 1)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def add_client_arguments(parser, decompose_option: str = "--mpi"):
    """Options of the client loop, shared with ``mlipdrive-ipi-driver`` (where the
    decomposition switch is ``--decompose``: its ``--mpi`` is i-PI's <ffmpi>)."""
    parser.add_argument(
        "--pbc", default="auto",
        help="periodicity: 'auto' (along every non-zero lattice vector i-PI sends; "
        "default), 'none', 'all', or three of T/F such as 'TTF'",
    )
    parser.add_argument(
        "--per-atom-energies", action="store_true",
        help="send per-atom energies (Hartree) in the extras, as {\"energies\": [...]}",
    )
    parser.add_argument(
        "--active", default=None, metavar="INDICES",
        help="the <activelist> of i-PI's <ffsocket>, e.g. '0,1,2' or '[0, 1, 2]': i-PI "
        "then sends only these atoms (0-based, in this order), and the client takes "
        "their types from the full structure. Without it, a structure of just the "
        "active atoms works too",
    )
    parser.add_argument(
        "--connect-timeout", type=non_negative_float, default=60.0, metavar="S",
        help="seconds to wait for i-PI to accept the connection; 0 tries once "
        "(default: 60)",
    )
    parser.add_argument(
        "--message-timeout", type=positive_float, default=30.0, metavar="S",
        help="seconds a started message may take to arrive in full (default: 30)",
    )
    parser.add_argument(
        "--idle-timeout", type=non_negative_float, default=0.0, metavar="S",
        help="seconds to wait for i-PI's next message; 0 waits forever (default)",
    )
    parser.add_argument(
        decompose_option, dest="mpi", action=argparse.BooleanOptionalAction, default=None,
        help="MPI domain decomposition over a socket (default: when launched by mpirun "
        "with >1 rank)",
    )
    parser.add_argument("--timings", action="store_true",
                        help="print where the time went at the end")
    parser.add_argument("-v", "--verbose", action="store_true", help="say more")


def client_options(args) -> dict:
    """Keyword arguments of :func:`mlipdrive.ipi.run` from the options of
    :func:`add_client_arguments`."""
    from mlipdrive.ipi import parse_pbc

    return dict(
        pbc=parse_pbc(args.pbc),
        per_atom_energies=args.per_atom_energies,
        active=parse_active(args.active),
        connect_timeout=args.connect_timeout,
        message_timeout=args.message_timeout,
        idle_timeout=args.idle_timeout,
        verbose=args.verbose,
        timings=args.timings,
        mpi=args.mpi,
        shm=args.shm,
        ffmpi=dict(group_size=args.group_size, server_rank=args.server_rank,
                   name=args.mpi_name, colour=args.mpi_id) if args.ffmpi else None,
    )


def parse_active(text):
    """'0,1,5', '0 1 5' or '[0, 1, 5]' (i-PI's activelist) -> [0, 1, 5]; None -> None."""
    if text is None:
        return None
    words = text.replace("[", " ").replace("]", " ").replace(",", " ").split()
    if not words or not all(word.isdigit() for word in words):
        raise ValueError(
            f"expected --active as i-PI's <activelist>, atom indices from 0 such as "
            f"'0,1,2' or '[0, 1, 2]', got '{text}'"
        )
    return [int(word) for word in words]


def run(args) -> int:
    from mlipdrive.ipi import run as run_client

    try:
        return run_client(
            args.model,
            args.structure,
            structure_format=args.structure_format,
            settings=settings_from_arguments(args),
            device=args.device,
            extensions=args.extensions,
            unix=args.unix,
            address=args.address,
            port=args.port,
            sockets_prefix=args.sockets_prefix,
            **client_options(args),
        )
    except (ValueError, RuntimeError, OSError) as error:
        if args.ffmpi:
            log(f"error: {error}")
            end_ffmpi_job(EXIT_USAGE)
        raise


# ----------------------------------------- mlipdrive-ipi-driver (i-PI driver options)

# i-PI's metatomic driver options (ipi/pes/metatomic.py) that mean the same here,
# besides the settings of the same name (check_consistency, non_conservative,
# uncertainty_threshold, skin), and ours (settings, pbc, per_atom_energies)
_IPI_DRIVER_KEYS = {"template", "model", "device", "extensions", "settings", "pbc",
                    "per_atom_energies", "verbose", "energy_ensemble",
                    "force_virial_ensemble"}
# i-PI's variant options -> the settings they set
_IPI_VARIANTS = {
    "energy_variant": ("variant/energy",),
    "non_conservative_variant": (
        "variant/non_conservative_forces", "variant/non_conservative_stress",
    ),
    "uncertainty_variant": ("variant/energy_uncertainty",),
}


def ipi_driver_main(argv=None) -> int:
    """``mlipdrive-ipi-driver``: the command line of i-PI's ``i-pi-py_driver``."""
    from mlipdrive.settings import SETTINGS

    parser = argparse.ArgumentParser(
        prog="mlipdrive-ipi-driver",
        description="mlipdrive's i-PI client with i-pi-py_driver's options, e.g. "
        "mlipdrive-ipi-driver -u -a NAME -m metatomic -o template=init.xyz,model=model.pt",
        epilog=_EPILOG + " -o takes every option of i-PI's metatomic driver (template, "
        "model, device, extensions, check_consistency, energy_ensemble, "
        "force_virial_ensemble, non_conservative, energy_variant, "
        "non_conservative_variant, uncertainty_variant, uncertainty_threshold (0 "
        "disables it, as in i-PI; mlipdrive's default is 0.1 eV/atom), skin), and "
        "settings=default|turbo and every inference setting "
        f"({', '.join(s.spelling for s in SETTINGS)}).",
    )
    parser.add_argument("-u", "--unix", action="store_true", help="use a UNIX socket")
    parser.add_argument("--mpi", dest="ffmpi", action="store_true",
                        help="i-PI's <ffmpi>: no socket; launch with i-PI in one MPI job, "
                        "'mpirun -disable-auto-cleanup -n 1 i-pi input.xml : "
                        "-n K mlipdrive-ipi-driver --mpi ...'")
    parser.add_argument("-a", "--address", default="localhost",
                        help="host name (INET) or socket name (UNIX)")
    parser.add_argument("-p", "--port", type=port_number, default=12345, help="INET port")
    parser.add_argument("-S", "--sockets_prefix", default="/tmp/ipi_",
                        help="prefix of UNIX socket files (default: /tmp/ipi_)")
    parser.add_argument("-m", "--mode", default="metatomic",
                        help="only 'metatomic' (or 'mlipdrive'); other i-PI potentials "
                        "run with i-pi-py_driver")
    parser.add_argument("-o", "--param", default="",
                        help="comma-separated key=value: template=FILE,model=FILE[,device=..,"
                        "extensions=DIR,settings=turbo,dtype=float32,...]")
    add_client_arguments(parser, decompose_option="--decompose")
    add_transport_arguments(parser)
    command_line_errors_end_ffmpi_job(parser, "--mpi")
    args = parser.parse_args(argv)
    try:
        return _ipi_driver_run(args, {s.name for s in SETTINGS} | {s.spelling for s in SETTINGS})
    except (ValueError, RuntimeError, OSError) as error:
        print(f"mlipdrive-ipi-driver: error: {error}", file=sys.stderr)
        if args.ffmpi:
            end_ffmpi_job(EXIT_USAGE)
        return EXIT_USAGE


def _ipi_driver_run(args, setting_names) -> int:
    from mlipdrive.ipi import run as run_client
    from mlipdrive.settings import InferenceSettings, parse_on_off

    if args.mode not in ("metatomic", "mlipdrive"):
        raise ValueError(
            f"mode '{args.mode}' is not served by mlipdrive-ipi-driver; use "
            "-m metatomic, or i-PI's own i-pi-py_driver for other potentials"
        )
    params = {}
    for item in filter(None, (part.strip() for part in args.param.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value in -o, got '{item}'")
        params[key.strip()] = value.strip()
    known = _IPI_DRIVER_KEYS | set(_IPI_VARIANTS) | setting_names
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"unknown -o option(s) {sorted(unknown)}; known: {sorted(known)}")
    for required in ("template", "model"):
        if required not in params:
            raise ValueError(f"-o needs {required}=FILE (e.g. -o template=init.xyz,"
                             "model=model.pt)")
    preset = params.pop("settings", "default")
    for option, names in _IPI_VARIANTS.items():
        if option in params:
            value = params.pop(option)
            params.update({name: value for name in names})
    given = {key: params.pop(key) for key in list(params) if key in setting_names}
    settings = InferenceSettings.from_strings(preset, **given)
    args.ensemble = _ensemble(params, settings.non_conservative != "off")
    if ";" in params.get("device", ""):
        raise ValueError(
            f"device={params['device']}: i-PI's driver spreads batches over several "
            "devices; mlipdrive-ipi-driver runs one device per process: give one device "
            "(and one client per device, or mpirun for CPU ranks)"
        )
    # -o pbc=..., per_atom_energies=..., verbose=... as i-pi-py_driver takes them
    args.pbc = params.get("pbc", args.pbc)
    for flag in ("per_atom_energies", "verbose"):
        if flag in params and parse_on_off(params[flag], f"-o {flag}"):
            setattr(args, flag, True)
    options = client_options(args)
    options["ensemble"] = args.ensemble
    return run_client(
        params["model"],
        params["template"],
        settings=settings,
        device=params.get("device", "cpu"),
        extensions=params.get("extensions") or None,
        unix=args.address if args.unix or args.shm else None,
        address=args.address,
        port=None if args.unix or args.shm else args.port,
        sockets_prefix=args.sockets_prefix,
        **options,
    )


def _ensemble(params, non_conservative: bool) -> str:
    """'', 'energy' or 'forces' from i-PI's energy_ensemble and
    force_virial_ensemble options, with i-PI's checks."""
    from mlipdrive.settings import parse_on_off

    energy = parse_on_off(params.get("energy_ensemble", "false"), "-o energy_ensemble")
    forces = parse_on_off(params.get("force_virial_ensemble", "false"), "-o force_virial_ensemble")
    if forces and not energy:
        raise ValueError("force_virial_ensemble=True needs energy_ensemble=True too (as in i-PI)")
    if forces and non_conservative:
        raise ValueError(
            "force_virial_ensemble and non_conservative cannot be on together (as in i-PI)"
        )
    return "forces" if forces else "energy" if energy else ""


if __name__ == "__main__":
    sys.exit(ipi_driver_main())
