"""``mlipdrive ipi``: drive an i-PI simulation with a model, serial or over MPI.

::

    i-pi input.xml &
    mlipdrive ipi --model model.pt --structure init.xyz --unix NAME
    mlipdrive ipi --model model.pt --structure init.xyz --address HOST --port PORT
    mpirun -np 4 mlipdrive ipi --model model.pt --structure init.xyz --unix NAME

Also ``mlipdrive-ipi-driver``, with the options of i-PI's own ``i-pi-py_driver``::

    mlipdrive-ipi-driver -u -a NAME -m metatomic -o template=init.xyz,model=model.pt

Exit codes: 0 after i-PI's EXIT, 2 bad options or inputs, 3 no server, 4 the
server went away, 5 a malformed message, 6 the model failed, 130 interrupted,
143 terminated (SIGTERM; the connection is closed so that i-PI re-queues the work).
"""

import argparse
import sys

from .cli import (
    add_settings_arguments,
    non_negative_float,
    port_number,
    positive_float,
    settings_from_arguments,
)

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
    parser.add_argument("--model", required=True, help="exported metatomic model (.pt)")
    parser.add_argument(
        "--structure", required=True,
        help="structure that initialises i-PI (gives the atom types and their "
        "number; any format ASE reads)",
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
    parser.add_argument(
        "--address", default="localhost", help="INET host of i-PI (default: localhost)"
    )
    parser.add_argument(
        "--sockets-prefix", default="/tmp/ipi_",
        help="prefix of UNIX socket files, as i-PI's <simulation sockets_prefix> "
        "(default: /tmp/ipi_)",
    )
    add_client_arguments(parser)
    add_settings_arguments(parser)
    parser.set_defaults(func=run)


def add_client_arguments(parser):
    """Options of the client loop, shared with ``mlipdrive-ipi-driver``."""
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
        "--mpi", action=argparse.BooleanOptionalAction, default=None,
        help="MPI domain decomposition (default: when launched by mpirun with >1 rank)",
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
        connect_timeout=args.connect_timeout,
        message_timeout=args.message_timeout,
        idle_timeout=args.idle_timeout,
        verbose=args.verbose,
        timings=args.timings,
        mpi=args.mpi,
    )


def run(args) -> int:
    from mlipdrive.ipi import run as run_client

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


# ----------------------------------------- mlipdrive-ipi-driver (i-PI driver options)

# i-PI's metatomic driver options that mean the same here
_IPI_DRIVER_KEYS = {"template", "model", "device", "extensions", "settings", "pbc",
                  "per_atom_energies", "verbose"}


def ipi_driver_main(argv=None) -> int:
    """``mlipdrive-ipi-driver``: the command line of i-PI's ``i-pi-py_driver``."""
    from mlipdrive.settings import SETTINGS

    parser = argparse.ArgumentParser(
        prog="mlipdrive-ipi-driver",
        description="mlipdrive's i-PI client with i-pi-py_driver's options, e.g. "
        "mlipdrive-ipi-driver -u -a NAME -m metatomic -o template=init.xyz,model=model.pt",
        epilog=_EPILOG + " -o also takes settings=default|turbo and every inference "
        f"setting ({', '.join(s.name for s in SETTINGS)}).",
    )
    parser.add_argument("-u", "--unix", action="store_true", help="use a UNIX socket")
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
    add_client_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return _ipi_driver_run(args, {s.name for s in SETTINGS})
    except (ValueError, RuntimeError, OSError) as error:
        print(f"mlipdrive-ipi-driver: error: {error}", file=sys.stderr)
        return 2


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
    unknown = set(params) - _IPI_DRIVER_KEYS - setting_names
    if unknown:
        raise ValueError(
            f"unknown -o option(s) {sorted(unknown)}; known: "
            f"{sorted(_IPI_DRIVER_KEYS | setting_names)}"
        )
    for required in ("template", "model"):
        if required not in params:
            raise ValueError(f"-o needs {required}=FILE (e.g. -o template=init.xyz,"
                             "model=model.pt)")
    preset = params.pop("settings", "default")
    given = {key: params.pop(key) for key in list(params) if key in setting_names}
    settings = InferenceSettings.from_strings(preset, **given)
    # -o pbc=..., per_atom_energies=..., verbose=... as i-pi-py_driver takes them
    args.pbc = params.get("pbc", args.pbc)
    for flag in ("per_atom_energies", "verbose"):
        if flag in params and parse_on_off(params[flag], f"-o {flag}"):
            setattr(args, flag, True)
    return run_client(
        params["model"],
        params["template"],
        settings=settings,
        device=params.get("device", "cpu"),
        extensions=params.get("extensions") or None,
        unix=args.address if args.unix else None,
        address=args.address,
        port=None if args.unix else args.port,
        sockets_prefix=args.sockets_prefix,
        **client_options(args),
    )


if __name__ == "__main__":
    sys.exit(ipi_driver_main())
