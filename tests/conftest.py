"""Shared fixtures: the reference models and thread limits for a 2-core machine."""

import os
import pathlib
import sys

import pytest

# tests share 2 cores: one thread per process, also for the lmp/mpirun/i-pi children
os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = pathlib.Path(__file__).resolve().parents[1]
MACE_MODEL = ROOT / "models" / "mace" / "mace-cual.pt"
sys.path.insert(0, str(ROOT / "models" / "lj"))

from export_lj import export_lj  # noqa: E402

# argon, in Å and eV; the same numbers feed pair_style lj/cut in the LAMMPS tests
LJ_SIGMA = 3.405
LJ_EPSILON = 0.0104
LJ_CUTOFF = 8.5


@pytest.fixture(scope="session")
def lj_model(tmp_path_factory) -> pathlib.Path:
    """Exact LJ model (shifted, like ASE's LennardJones), half neighbour list."""
    path = tmp_path_factory.mktemp("models") / "lj.pt"
    export_lj(path, sigma=LJ_SIGMA, epsilon=LJ_EPSILON, cutoff=LJ_CUTOFF, shifted=True)
    return path


@pytest.fixture(scope="session")
def lj_model_unshifted(tmp_path_factory) -> pathlib.Path:
    """Exact LJ model without the energy shift, like LAMMPS's plain lj/cut."""
    path = tmp_path_factory.mktemp("models") / "lj-unshifted.pt"
    export_lj(path, sigma=LJ_SIGMA, epsilon=LJ_EPSILON, cutoff=LJ_CUTOFF, shifted=False)
    return path


@pytest.fixture(scope="session")
def lj_model_full(tmp_path_factory) -> pathlib.Path:
    """Exact LJ model asking for a full neighbour list."""
    path = tmp_path_factory.mktemp("models") / "lj-full.pt"
    export_lj(
        path, sigma=LJ_SIGMA, epsilon=LJ_EPSILON, cutoff=LJ_CUTOFF, shifted=True,
        full_list=True,
    )
    return path


@pytest.fixture(scope="session")
def mace_model() -> pathlib.Path:
    """The shipped small MACE model (Cu, Al), float64."""
    assert MACE_MODEL.is_file(), f"{MACE_MODEL} is missing: run models/mace/train.sh"
    return MACE_MODEL


# ---------------------------------------------------------------- model families

from model_families import MODEL_FAMILIES, ModelFamily, import_python_modules  # noqa: E402


@pytest.fixture(scope="session", params=list(MODEL_FAMILIES), ids=list(MODEL_FAMILIES))
def model_family(request) -> ModelFamily:
    """Each shipped reference model (mace, pet, soap_bpnn) with its tolerances."""
    family = MODEL_FAMILIES[request.param]
    assert family.path.is_file(), (
        f"{family.path} is missing: run models/{family.name}/train.sh"
    )
    if family.extensions is not None:
        assert family.extensions.is_dir(), (
            f"{family.extensions} is missing: run tools/setup_env.sh (make setup), "
            "which installs the models' TorchScript extensions there"
        )
    import_python_modules(family)  # process-wide: sphericart's autograd formulas
    return family


# ------------------------------------------------------------------- model kinds

from model_kinds import KIND_NAMES, ModelKind, export_variants_only, model_kinds  # noqa: E402


@pytest.fixture(scope="session")
def variants_only_model(tmp_path_factory) -> pathlib.Path:
    """Exact Cu/Al LJ whose only output is ``energy/xyz`` (tests/model_kinds.py)."""
    return export_variants_only(tmp_path_factory.mktemp("models") / "variants-only.pt")


@pytest.fixture(scope="session", params=KIND_NAMES, ids=KIND_NAMES)
def model_kind(request, variants_only_model) -> ModelKind:
    """Each kind of model of tests/model_kinds.py (GAP with TensorMap weights and
    featomic-torch, SOAP-BPNN with sphericart-torch, long-range PET, variants only)."""
    kind = model_kinds(variants_only_model)[request.param]
    assert kind.family.path.is_file(), (
        f"{kind.family.path} is missing: run models/{kind.family.name}/train.sh"
    )
    if kind.family.extensions is not None:
        package = kind.family.extensions / kind.extension_package
        assert package.is_dir(), (
            f"{package} is missing: run tools/setup_env.sh (make setup), which "
            "installs the models' TorchScript extensions there"
        )
    import_python_modules(kind.family)  # sphericart's autograd formulas
    return kind
