"""The models a benchmark runs: the shipped MACE, the exact LJ model, any ``.pt``.

``mace`` is ``models/mace/mace-cual.pt`` of the checkout; ``lj`` is exported
into the output folder by ``models/lj/export_lj.py`` (argon, shifted at the
cutoff, the parameters below), so that LAMMPS's ``pair_style lj/cut`` with
``pair_modify shift yes`` is the same potential. ``lj-strict`` is the same
potential written apart, on a strict half list (``models/lj/strict_half_lj.py``).
"""

import dataclasses
import pathlib
import sys
from typing import Dict, List, Optional

from .systems import SystemKind, kind_for_types

#: the checkout holding driver/, models/ and benchmarks/
ROOT = pathlib.Path(__file__).resolve().parents[1]
MACE_PATH = ROOT / "models" / "mace" / "mace-cual.pt"

#: argon in Å and eV, as in the test suite
LJ = {"sigma": 3.405, "epsilon": 0.0104, "cutoff": 8.5, "shifted": True}


@dataclasses.dataclass
class ModelSpec:
    """One model of the matrix."""

    label: str
    path: str
    atomic_types: List[int]
    system: SystemKind
    #: LJ parameters when the model is our exact LJ (enables LAMMPS's lj/cut row)
    lj: Optional[Dict] = None
    #: why this model cannot run ('' when it can)
    missing: str = ""

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["system"] = self.system.name
        return data


def resolve(name: str, workdir: pathlib.Path, unit_cell: Optional[str] = None) -> ModelSpec:
    """The model called ``name``: 'mace', 'lj' or the path of an exported model."""
    if name in ("lj", "lj-strict"):
        label = "lj-argon" if name == "lj" else "lj-strict-half"
        path = workdir / "models" / f"{label}.pt"
        if not path.is_file():
            export_lj(path, strict_half=name == "lj-strict")
        return ModelSpec(label, str(path), [18], kind_for_types([18], unit_cell), lj=dict(LJ))
    if name == "mace":
        if not MACE_PATH.is_file():
            return ModelSpec(
                "mace-cual", str(MACE_PATH), [13, 29], kind_for_types([13, 29], unit_cell),
                missing=f"{MACE_PATH} does not exist yet; build it with models/mace/train.sh",
            )
        name = str(MACE_PATH)
    path = pathlib.Path(name)
    if not path.is_file():
        raise ValueError(
            f"model '{name}' is neither 'mace', 'lj', 'lj-strict' nor an existing .pt file; give "
            "one of those"
        )
    types = model_types(path)
    label = "mace-cual" if path.resolve() == MACE_PATH.resolve() else path.stem
    return ModelSpec(label, str(path.resolve()), types, kind_for_types(types, unit_cell))


def model_types(path: pathlib.Path) -> List[int]:
    """Atomic types declared by an exported model (loads it, with metatomic)."""
    from metatomic.torch import load_atomistic_model

    try:
        model = load_atomistic_model(str(path))
    except (RuntimeError, ValueError) as error:
        raise ValueError(
            f"cannot load '{path}' to read its atomic types: {str(error).splitlines()[0]}"
        ) from error
    return sorted(int(t) for t in model.capabilities().atomic_types)


def export_lj(path: pathlib.Path, strict_half: bool = False):
    """Write our exact LJ argon model to ``path`` (``strict_half``: the one on a
    strict half list, models/lj/strict_half_lj.py)."""
    script = ROOT / "models" / "lj" / "export_lj.py"
    if not script.is_file():
        raise ValueError(
            f"the LJ model is exported by models/lj/export_lj.py, which is not at "
            f"{script}; run mlipdrive bench from an mlipdrive checkout, or export the "
            "model yourself and give its .pt file"
        )
    sys.path.insert(0, str(script.parent))
    try:
        from export_lj import export_lj as export
        from strict_half_lj import export as export_strict
    finally:
        sys.path.pop(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if strict_half:
        export_strict(str(path), cutoff=LJ["cutoff"], sigma=LJ["sigma"], epsilon=LJ["epsilon"])
        return
    export(path, sigma=LJ["sigma"], epsilon=LJ["epsilon"], cutoff=LJ["cutoff"],
           shifted=LJ["shifted"], elements=("Ar",))
