"""The controls of this run: our LJ and the strict half-list LJ declaring an
interaction range a hair above their cutoff (8.5 * (1 + 1e-6) Å). The plugin
then treats them as message passing and hands them every pair between two
ghosts, as it did every model before ghost-ghost pairs were pruned; the
potential and the ghost shell are the same to 1e-6 Å.

    python benchmarks/results/ranks_short_range/export_controls.py DIR
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "models" / "lj"))

from lj_model import LennardJones  # noqa: E402
from metatomic.torch import AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput  # noqa: E402
from strict_half_lj import StrictHalfLJ  # noqa: E402

SIGMA, EPSILON, CUTOFF = 3.405, 0.0104, 8.5


def save(module, path: pathlib.Path):
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[18],
        interaction_range=CUTOFF * (1 + 1e-6),
        length_unit="angstrom",
        supported_devices=["cpu"],
        dtype="float64",
    )
    AtomisticModel(module.eval(), ModelMetadata(name=path.stem), capabilities).save(str(path))


if __name__ == "__main__":
    folder = pathlib.Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    save(LennardJones(SIGMA, EPSILON, CUTOFF, True, False), folder / "lj-unpruned.pt")
    save(StrictHalfLJ(SIGMA, EPSILON, CUTOFF), folder / "lj-strict-half-unpruned.pt")
