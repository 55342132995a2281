"""Bad input to pair_style mlipdrive: a LAMMPS ERROR naming the cause and the fix.

Never a segfault or a hang: every run has a timeout, and runs that fail on one
MPI rank only (NaN forces) must still bring the whole job down.
"""

import pathlib

import pytest

from mlipdrive.units import LAMMPS_UNITS_ADVICE
from conftest import LJ_CUTOFF
from lammps_testing import (
    export_lj_variant,
    export_model_needing_extension,
    lj_lattice_lines,
    run_lmp,
)


# neighbor skin: LAMMPS's default for units metal, 2 Å


def script(pair_style, pair_coeff="* * Ar", before="", units="metal", after="run 10"):
    return "\n".join(
        [
            f"units {units}",
            before,
            lj_lattice_lines("orthogonal", 2),
            f"pair_style {pair_style}",
            f"pair_coeff {pair_coeff}",
            after,
        ]
    )


def assert_error(result, *fragments):
    assert result.returncode != 0, result.output[-3000:]
    text = " ".join(result.output.split())  # LAMMPS wraps long lines
    assert "ERROR" in text, result.output[-3000:]
    assert "Segmentation fault" not in text and "signal 11" not in text, result.output[-3000:]
    for fragment in fragments:
        assert fragment in text, (fragment, result.error() or result.output[-3000:])


def test_missing_model_file(tmp_path):
    result = run_lmp(tmp_path, script(f"mlipdrive {tmp_path / 'missing.pt'}"), check=False)
    assert_error(result, "missing.pt' does not exist", "give the path of an exported metatomic model")


def test_corrupt_model_file(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a TorchScript archive" * 10)
    result = run_lmp(tmp_path, script(f"mlipdrive {corrupt}"), check=False)
    assert_error(result, "is not a loadable metatomic model", "export it again")


def test_model_needing_an_extension(tmp_path):
    model = export_model_needing_extension(tmp_path / "needs-extension.pt")
    result = run_lmp(tmp_path, script(f"mlipdrive {model}"), check=False)
    assert_error(result, "needs TorchScript extensions", "extensions DIR")


def test_element_unknown_to_the_model(tmp_path, lj_model):
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model}", "* * Cu"), check=False)
    assert_error(result, "element Cu (29) for atom type 1 is not known by model", "which knows Ar (18)")


def test_not_an_element(tmp_path, lj_model):
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model}", "* * Xx"), check=False)
    assert_error(result, "'Xx' for atom type 1 is neither an element symbol nor an atomic number")


@pytest.mark.parametrize("coeff", ["* * Ar Ar", "* *"])
def test_wrong_number_of_pair_coeff_elements(tmp_path, lj_model, coeff):
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model}", coeff), check=False)
    assert_error(result, "needs one element per atom type", "e.g. 'pair_coeff * * Ar'")


def test_pair_coeff_not_star_star(tmp_path, lj_model):
    # LAMMPS itself checks this for styles with one pair_coeff line (one_coeff)
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model}", "1 1 Ar"), check=False)
    assert_error(result, "must start with * * for pair style mlipdrive")


def test_newton_pair_off(tmp_path, lj_model):
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model}", before="newton off"), check=False)
    assert_error(result, "requires newton pair on", "remove 'newton off'")


def test_unsupported_units(tmp_path, lj_model):
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model}", units="lj"), check=False)
    # the advice is the Python definition's, generated into the plugin
    assert_error(result, "does not support 'units lj'", LAMMPS_UNITS_ADVICE)
    assert "metal" in LAMMPS_UNITS_ADVICE and "electron" in LAMMPS_UNITS_ADVICE


def test_bad_keywords(tmp_path, lj_model):
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model} colour blue"), check=False)
    assert_error(result, "unknown setting 'colour'", "known settings: dtype")
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model} dtype float16"), check=False)
    assert_error(result, "setting 'dtype' must be one of [model, float64, float32], got 'float16'")
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model} check_consistency maybe"), check=False)
    assert_error(result, "expected on/off for setting 'check_consistency', got 'maybe'")
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model} threads"), check=False)
    assert_error(result, "expected KEYWORD VALUE pairs")


def test_cuda_without_gpu(tmp_path, lj_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model} device cuda"), check=False)
    assert_error(result, "torch sees no CUDA GPU", "use 'device cpu'")


@pytest.fixture(scope="module")
def lj_two_layers(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "lj-two-layers.pt"
    return export_lj_variant(path, interaction_range=2 * LJ_CUTOFF)


def test_comm_cutoff_too_small(tmp_path, lj_two_layers):
    text = script(f"mlipdrive {lj_two_layers}", after="comm_modify cutoff 10.0\nrun 10")
    result = run_lmp(tmp_path, text, ranks=2, check=False)
    assert_error(
        result,
        "comm_modify cutoff 10 is shorter than the 19 this model needs",
        "remove 'comm_modify cutoff'",
    )


def test_infinite_range_on_two_ranks(tmp_path):
    model = export_lj_variant(tmp_path / "lj-inf.pt", interaction_range=float("inf"))
    result = run_lmp(tmp_path, script(f"mlipdrive {model}"), ranks=2, check=False)
    assert_error(result, "infinite interaction range", "run it on one rank")


def test_periodic_mode_on_two_ranks(tmp_path, lj_model):
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model} mode periodic"), ranks=2, check=False)
    assert_error(result, "'mode periodic' works on one MPI rank only", "use 'mode ghosts'")


@pytest.mark.parametrize("ranks", [1, 2])
def test_nan_forces(tmp_path, lj_model, ranks):
    # a second atom on top of atom 1: r = 0, so the LJ energy is infinite
    text = script(
        f"mlipdrive {lj_model}",
        after="create_atoms 1 single 0.0 0.0 0.0 units box\nrun 10",
    )
    result = run_lmp(tmp_path, text, ranks=ranks, check=False, timeout=120)
    assert_error(result, "non-finite energy or forces", "atoms too close or overlapping")


def test_plugin_file_exists():
    from mlipdrive.lammps import plugin_path

    assert pathlib.Path(plugin_path()).is_file()


def test_dimension_2_refused(tmp_path, lj_model):
    lines = [
        "units metal",
        "dimension 2",
        "boundary p p p",
        "lattice sq 4.0",
        "region box block 0 4 0 4 -0.5 0.5",
        "create_box 1 box",
        "create_atoms 1 box",
        "mass 1 39.948",
        f"pair_style mlipdrive {lj_model}",
        "pair_coeff * * Ar",
        "run 0",
    ]
    result = run_lmp(tmp_path, "\n".join(lines), check=False)
    assert_error(result, "three-dimensional models", "use dimension 3")


def test_log_names_the_length_unit(tmp_path, lj_model):
    """The interaction range is printed in the length unit (Å), not the unit style."""
    result = run_lmp(tmp_path, script(f"mlipdrive {lj_model}", after="run 0"))
    line = next(line for line in result.output.splitlines() if "interaction range" in line)
    assert line.split()[3:5] == [repr(LJ_CUTOFF), "angstrom"], line


# metatomic's export looks for sphericart's libgomp beside site-packages, not in DIR
@pytest.mark.filterwarnings("ignore:No libgomp shared library found")
def test_operator_without_autograd_is_an_error(tmp_path):
    """In lmp (no Python), sphericart-torch's operators have no autograd formula
    of their own: the plugin supplies the value operators' (the SOAP-BPNN tests
    show it), and refuses the others instead of giving wrong forces."""
    import torch
    from model_families import MODEL_FAMILIES, import_python_modules

    from lammps_testing import export_lj_through_op

    family = MODEL_FAMILIES["soap_bpnn"]
    import_python_modules(family)  # metatomic's export asks sphericart.torch for its dependencies
    version = "torch-{}.{}".format(*torch.__version__.split(".")[:2])
    library = family.extensions / "sphericart" / "torch" / version / "lib" / "libsphericart_torch.so"
    loaded = set(torch.ops.loaded_libraries)
    try:
        # through torch.ops, so that the export records the library as an extension
        torch.ops.load_library(str(library))
        extensions = tmp_path / "extensions"
        model = export_lj_through_op(tmp_path / "through-op.pt", "sphericart", str(extensions))
    finally:
        torch.ops.loaded_libraries.intersection_update(loaded)
    result = run_lmp(tmp_path, script(f"mlipdrive {model} extensions {extensions}"), check=False)
    assert_error(result, "sphericart_torch::spherical_harmonics_with_gradients", "silently wrong")


def test_restart_with_another_model_at_the_path_warns(tmp_path, lj_model, lj_two_layers):
    """read_restart reloads the model from its path: a different file there is said."""
    model = tmp_path / "model.pt"
    model.write_bytes(pathlib.Path(lj_model).read_bytes())
    write = script(f"mlipdrive {model}", after="run 0\nwrite_restart state.restart")
    run_lmp(tmp_path, write)
    read = "read_restart state.restart\nrun 0\n"
    same = run_lmp(tmp_path, read, name="in.same")
    assert "is not the one this restart file was written with" not in same.output
    model.write_bytes(pathlib.Path(lj_two_layers).read_bytes())
    other = run_lmp(tmp_path, read, name="in.other")
    text = " ".join(other.output.split())
    assert "WARNING" in text and f"model file {model} is not the one this restart file was written with" in text


def test_directory_as_model(tmp_path):
    result = run_lmp(tmp_path, script(f"mlipdrive {tmp_path}"), check=False)
    assert_error(result, "is a directory, not a model file")
