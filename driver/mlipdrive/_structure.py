"""The structure file a command starts from (``mlipdrive run``, ``mlipdrive ipi``,
``mlipdrive-ipi-driver``, ``mlipdrive bench``), read in one place with one error."""

import os
from typing import Optional


class StructureError(ValueError):
    """A structure file that cannot be used; the message names the file and why."""


def read_structure(path, format: Optional[str] = None, index: int = -1):
    """One frame of ``path`` (any format ASE reads) as :class:`ase.Atoms`.

    :param format: ASE's name of the format; default: guessed from the file
    :param index: the frame; default: the last, as ``ase.io.read``
    :raises StructureError: "cannot read structure 'PATH': REASON" for a missing
        file, a directory, a file that ASE cannot parse, or one without atoms
    """
    import ase.io

    try:
        # parallel=False: under MPI, ASE's read is otherwise a collective (rank 0
        # reads and broadcasts), and the callers read on one rank only
        atoms = ase.io.read(path, index=index, format=format, parallel=False)
    except Exception as error:  # ASE's parsers raise many kinds; all mean "unreadable"
        raise StructureError(
            f"cannot read structure '{path}': {_reason(path, format, error)}"
        ) from error
    if len(atoms) == 0:
        raise StructureError(f"cannot read structure '{path}': it holds no atoms")
    return atoms


def _reason(path, format: Optional[str], error: Exception) -> str:
    """Why ``ase.io.read`` failed, in one line."""
    if isinstance(error, FileNotFoundError) or not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "it is a directory, not a structure file"
    if isinstance(error, PermissionError):
        return "permission denied"
    how = f"as format '{format}'" if format else "(format guessed from the file name)"
    detail = " ".join(str(error).split()) or type(error).__name__
    return f"ASE cannot parse it {how}: {detail}"
