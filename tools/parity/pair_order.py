"""How much the reference models' energies and forces change with the order of their pairs.

    OMP_NUM_THREADS=1 .venv/bin/python tools/parity/pair_order.py [--orders 20]
        [--seed 0] [--models lj mace pet soap_bpnn pet_llpr soap_bpnn_nc] [--output FILE.md]

Each model runs on the tests' 108-atom rattled, strained CuAl frame
(``copper_aluminium(repeat=3, rattle=0.1, strain=0.03)`` of ``tests/structures.py``),
first with its pairs in vesin's order, then ``--orders`` times with the rows of
every neighbour list shuffled (each pair keeping its samples and vector), and
``--orders`` times with the atoms of the System shuffled (pairs renumbered, in
vesin's order); see ``tests/ordered_pairs.py``. It runs in the dtype the model was
exported with and, for float64 models, also in float32 (mlipdrive's ``dtype
float32`` conversion, ``mlipdrive.loading.with_dtype``). The table gives the
largest change from vesin's order: total energy per atom, per-atom energies and
forces, the last two also in units of ``eps * max|E_i|`` and ``eps * max|F|``
(eps of the dtype it ran in), which ``tests/test_pair_order.py`` bounds. A
model whose spread is rounding has the same ratios in float64 and float32.

``lj`` is ``models/lj/export_lj.py``'s model (shifted, half list, cutoff 8.5 Å)
with copper-like parameters for both Al and Cu (``tests/ordered_pairs.py``:
sigma 2.338 Å, epsilon 0.409 eV), so that the CuAl frame sits near its minimum.
"""

import argparse
import pathlib
import platform
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch
from metatomic.torch import load_atomistic_model

from mlipdrive.loading import with_dtype

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from model_families import EXTENSIONS, MODEL_FAMILIES, import_python_modules  # noqa: E402
from ordered_pairs import OrderedEvaluation, export_cual_lj, spread  # noqa: E402
from structures import copper_aluminium  # noqa: E402

# the models with a card beside the shipped families of tests/model_families.py:
# name -> (path, extensions directory, Python modules of the extensions)
OTHER_MODELS = {
    "pet_llpr": (ROOT / "models" / "pet_llpr" / "pet-cual-llpr.pt", None, ()),
    "soap_bpnn_nc": (
        ROOT / "models" / "soap_bpnn_nc" / "soap-bpnn-cual-nc.pt", EXTENSIONS, ("sphericart.torch",)
    ),
}
ALL_MODELS = ["lj", *MODEL_FAMILIES, *OTHER_MODELS]


def cpu_model() -> str:
    """``lscpu``'s model name (platform.processor() where lscpu is missing)."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def model_source(name: str, scratch: pathlib.Path):
    """(path, extensions directory or None) of ``name``, its extensions' Python
    modules imported (sphericart-torch registers its gradients there)."""
    if name == "lj":
        path = scratch / "lj-cual.pt"
        if not path.is_file():
            export_cual_lj(path)
        return path, None
    if name in MODEL_FAMILIES:
        family = MODEL_FAMILIES[name]
        import_python_modules(family)
        return family.path, family.extensions
    path, extensions, modules = OTHER_MODELS[name]
    if modules:
        if str(extensions) not in sys.path:
            sys.path.append(str(extensions))
        for module in modules:
            __import__(module)
    return path, extensions


def measure(name, atoms, orders, seed, scratch):
    """One table row per dtype the model runs in: its exported one, and float32."""
    path, extensions = model_source(name, scratch)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run models/{name}/train.sh")
    rows = []
    exported = load_atomistic_model(str(path), extensions_directory=_optional(extensions))
    exported = exported.capabilities().dtype
    for dtype in dict.fromkeys([exported, "float32"]):
        # with_dtype converts the loaded module in place: load it again each time
        model = load_atomistic_model(str(path), extensions_directory=_optional(extensions))
        evaluation = OrderedEvaluation(with_dtype(model, dtype), atoms)
        pairs = spread(evaluation, orders, seed, kind="random")
        atom_order = spread(evaluation, orders, seed, kind="atoms")
        eps = float(np.finfo(np.float32 if dtype == "float32" else np.float64).eps)
        rows.append({
            "model": name, "exported": exported, "ran": dtype,
            "pairs": "+".join(str(n) for n in evaluation.n_pairs()),
            "pairs E/atom": pairs["energy/atom"], "pairs energies": pairs["energies"],
            "pairs energies/(eps max|E_i|)": pairs["energies"] / (eps * pairs["max |E_i|"]),
            "pairs F": pairs["forces"], "pairs F/(eps max|F|)": pairs["forces"] / (eps * pairs["max |F|"]),
            "atoms E/atom": atom_order["energy/atom"], "atoms F": atom_order["forces"],
        })
    return rows


def _optional(value):
    return None if value is None else str(value)


def table(rows, orders, command) -> str:
    lines = [
        f"`{command}`",
        "",
        f"CPU {cpu_model()}, torch {torch.__version__}, 1 thread; 108-atom CuAl frame; "
        f"largest change from vesin's order over {orders} random orders",
        "",
        "| model | exported | run in | pairs | pair order: E/atom (eV) | per-atom E (eV) | "
        "per-atom E / (eps max\\|E_i\\|) | F (eV/Å) | F / (eps max\\|F\\|) | "
        "atom order: E/atom (eV) | F (eV/Å) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['exported']} | {r['ran']} | {r['pairs']} | {r['pairs E/atom']:.1e} | "
            f"{r['pairs energies']:.1e} | {r['pairs energies/(eps max|E_i|)']:.1f} | "
            f"{r['pairs F']:.1e} | {r['pairs F/(eps max|F|)']:.1f} | "
            f"{r['atoms E/atom']:.1e} | {r['atoms F']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20, help="random orders per model and dtype")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random orders")
    parser.add_argument("--models", nargs="+", default=ALL_MODELS, choices=ALL_MODELS)
    parser.add_argument("--output", default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    # one thread: the kernels' own summation order is then fixed, the pairs' is the variable
    torch.set_num_threads(1)
    atoms = copper_aluminium(repeat=3, rattle=0.1, strain=0.03)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pair-order-") as scratch, warnings.catch_warnings():
        # metatomic warns about sphericart's CUDA helper and deprecated names
        warnings.simplefilter("ignore")
        for name in args.models:
            rows += measure(name, atoms, args.orders, args.seed, pathlib.Path(scratch))
    text = table(rows, args.orders, " ".join(["tools/parity/pair_order.py", *sys.argv[1:]]))
    print(text)
    if args.output:
        pathlib.Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
