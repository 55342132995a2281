"""Check and score a model that needs TorchScript extensions (SOAP-BPNN: sphericart-torch).

Same checks as models/mace/evaluate.py (capabilities, neighbour lists, held-out
errors through metatomic's own ASE calculator), but the model is loaded with
an extensions directory: the runtime venv's pinned one (.venv/extensions, made
by tools/setup_env.sh), never the copy that `mtt export` leaves in run/.

sphericart-torch 2.0 registers the autograd formulas of its operators in
Python, when `sphericart.torch` is imported; loading only its library (what
metatomic's extensions directory does) leaves them without a gradient, and
forces and stress silently miss the angular part (torch warns "an autograd
kernel was not registered"). So this script imports `sphericart.torch` from the
extensions directory first (mlipdrive.extensions.import_extension_packages).

Usage: python evaluate.py MODEL.pt EXTENSIONS_DIR [TEST.xyz]
"""

import pathlib
import sys

from metatomic.torch import load_atomistic_model

from mlipdrive.extensions import import_extension_packages

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "mace"))
from evaluate import describe, score  # noqa: E402

if __name__ == "__main__":
    import_extension_packages(sys.argv[2])  # sphericart.torch: its autograd formulas
    model = load_atomistic_model(sys.argv[1], extensions_directory=sys.argv[2])
    describe(model)
    if len(sys.argv) > 3:
        score(model, sys.argv[3])
