"""The benchmark matrix: one :class:`Row` per engine × model × size × settings × ranks.

A row is plain data (it travels to worker processes as JSON). References and
the LJ-only ``lj/cut`` row run once per model and size, with the model as
exported (settings label ``reference``); engines without MPI run on one rank.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

#: settings label of the rows that run a model as exported (references)
REFERENCE = "reference"


@dataclasses.dataclass
class Row:
    """Everything one measurement needs."""

    engine: str
    model: str  # label, e.g. 'mace-cual'
    model_path: str
    system: str  # system label, e.g. 'CuAl'
    atoms: int
    structure: str  # extxyz with momenta; system.data next to it
    species: List[str]  # element of each LAMMPS atom type, in order
    settings: str  # label: 'default', 'turbo', a custom 'k=v,...', or 'reference'
    settings_values: Dict[str, str]  # 'preset' plus setting texts (engine-independent)
    ranks: int = 1
    beads: int = 1  # i-PI rows: beads of the ring polymer (others: ignored)
    threads: int = 1
    device: str = "cpu"
    timestep_fs: float = 1.0
    temperature_k: float = 300.0
    steps: int = 0  # per repeat; 0: chosen from the time budget
    repeats: int = 3
    warmup: int = 5
    budget_s: float = 2.0  # seconds per repeat when steps == 0
    max_steps: int = 2000
    timeout_s: float = 900.0  # for the row's processes
    seed: int = 12345
    thermo_every: int = 1
    lj: Optional[Dict] = None  # LJ parameters for lj/cut
    index: int = 0  # position in the matrix

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Row":
        return cls(**data)

    @property
    def label(self) -> str:
        return (
            f"{self.engine} {self.model} {self.atoms} atoms {self.settings}"
            + (f" np={self.ranks}" if self.ranks > 1 else "")
            + (f" beads={self.beads}" if self.beads > 1 else "")
        )

    def settings_for_load(self) -> dict:
        """The ``settings=`` mapping of :func:`mlipdrive.load` (values typed)."""
        from mlipdrive.settings import parse_value

        values = dict(self.settings_values)
        preset = values.pop("preset", "default")
        typed = {key: parse_value(key, value) for key, value in values.items()}
        return {"preset": preset, **typed}


def parse_settings(text: str, threads: int) -> Tuple[str, Dict[str, str]]:
    """A ``--settings`` item: a preset name or ``key=value,...`` (optionally with
    ``preset=NAME``), as (label, values). ``threads`` is added unless given.

    Checked against the settings table here, so that a typo fails before any
    row runs.
    """
    from mlipdrive.settings import PRESETS, InferenceSettings

    text = text.strip()
    if "=" not in text:
        if text not in PRESETS:
            raise ValueError(
                f"unknown settings '{text}'; give a preset ({', '.join(PRESETS)}) or "
                "KEY=VALUE[,KEY=VALUE...] such as 'preset=turbo,dtype=float64'"
            )
        values = {"preset": text}
    else:
        values = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"expected KEY=VALUE in settings '{text}', got '{item}'")
            values[key.strip()] = value.strip()
        values.setdefault("preset", "default")
    values.setdefault("threads", str(threads))
    checked = dict(values)
    InferenceSettings.from_strings(checked.pop("preset"), **checked)
    return text, values


def expand(
    *,
    engines: Sequence,
    models: Sequence,
    systems: Dict[Tuple[str, int], dict],
    sizes: Sequence[int],
    settings: Sequence[Tuple[str, Dict[str, str]]],
    ranks: Sequence[int],
    common: dict,
) -> List[Row]:
    """All rows, in run order: per model and size, every engine (floor first).

    :param engines: :class:`~mlipdrive.bench.engines.Engine` objects
    :param systems: (model label, size) -> {'atoms', 'structure', 'species',
        'system', 'temperature_k'}
    :param common: fields shared by every row (threads, device, timestep, ...)
    """
    rows: List[Row] = []
    reference_values = {"preset": "default", "threads": str(common.get("threads", 1))}
    for model in models:
        for size in sizes:
            system = systems[(model.label, size)]
            for engine in engines:
                if engine.lj_only and model.lj is None:
                    continue
                if engine.settings:
                    settings_list = settings
                else:
                    settings_list = [(REFERENCE, reference_values)]
                rank_list = ranks if engine.mpi else [1]
                for label, values in settings_list:
                    for n_ranks in rank_list:
                        rows.append(Row(
                            engine=engine.name,
                            model=model.label,
                            model_path=model.path,
                            system=system["system"],
                            atoms=system["atoms"],
                            structure=system["structure"],
                            species=list(system["species"]),
                            settings=label,
                            settings_values=dict(values),
                            ranks=n_ranks,
                            temperature_k=system["temperature_k"],
                            lj=model.lj,
                            **common,
                        ))
    for index, row in enumerate(rows):
        row.index = index
    return rows
