#!/usr/bin/env bash
# Create or reuse .venv with everything pinned; quick when nothing changed.
# Every install goes through constraints.txt: torch==2.13.0 is the only CPU build
# that installs here without GBs of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.mlipdrive-installed
INPUTS="pyproject.toml constraints.txt tools/setup_env.sh"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
EXTENSIONS=$VENV/extensions
if [ ! -f "$STAMP" ] || [ ! -d "$EXTENSIONS/sphericart" ] ||
    [ -n "$(find $INPUTS -newer "$STAMP" 2>/dev/null)" ]; then
    "$VENV/bin/pip" install -q --upgrade "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0"
    "$VENV/bin/pip" install -q -c constraints.txt torch==2.13.0
    # no build isolation: an isolated build would fetch its own (CUDA) torch
    "$VENV/bin/pip" install -q --no-build-isolation -c constraints.txt -e ".[test]"
    # TorchScript extensions of the reference models, as one plain directory to
    # pass as the model's extensions directory (mlipdrive.load(..., extensions=),
    # --extensions, pair_style ... extensions): sphericart-torch for SOAP-BPNN.
    # --no-deps: its one dependency is torch, already in the venv (pip --target
    # would otherwise put a second torch there). Built aside, then swapped in.
    rm -rf "$EXTENSIONS.new"
    "$VENV/bin/pip" install -q --no-deps --target "$EXTENSIONS.new" -c constraints.txt \
        sphericart-torch
    rm -rf "$EXTENSIONS"
    mv "$EXTENSIONS.new" "$EXTENSIONS"
    touch "$STAMP"
fi
if [ -x lammps_plugin/build.sh ]; then
    lammps_plugin/build.sh "$VENV/bin/python"
fi
