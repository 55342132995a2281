#!/usr/bin/env bash
# Create or reuse .venv with everything pinned; quick when nothing changed.
# Every install goes through constraints.txt: torch==2.13.0 is the only CPU build
# that installs here without GBs of CUDA wheels. pip builds and installs the
# LAMMPS plugin itself (setup.py); this script only pins and installs, and says
# what it does (pip's own -q output would be silent for minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.mlipdrive-installed
PLUGIN_STAMP=$VENV/.mlipdrive-plugin-built
INPUTS="pyproject.toml setup.py constraints.txt tools/setup_env.sh"
# what the plugin is built from: a change rebuilds it (only what changed recompiles)
PLUGIN_INPUTS="lammps_plugin driver/mlipdrive/settings.py driver/mlipdrive/units.py
driver/mlipdrive/messages.py driver/mlipdrive/neighbors.py driver/mlipdrive/outputs.py
driver/mlipdrive/loading.py
lammps_plugin/python/plugin_build.py"
PIP="$VENV/bin/pip"
step() { echo "setup_env: $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV"
    python3 -m venv "$VENV"
fi
EXTENSIONS=$VENV/extensions
if [ ! -f "$STAMP" ] || [ ! -d "$EXTENSIONS/sphericart" ] || [ ! -d "$EXTENSIONS/featomic/torch" ] ||
    [ -n "$(find $INPUTS -newer "$STAMP" 2>/dev/null)" ]; then
    step "installing the pinned packages (torch, metatomic, lammps, mpich, ...) into $VENV"
    "$PIP" install -q --upgrade "pip==26.3"
    # the build requirements first (torch pinned): the plugin is built against
    # them, without build isolation (which would fetch its own, CUDA, torch)
    "$PIP" install -q -c constraints.txt --group build
    step "installing mlipdrive (editable); pip builds the LAMMPS plugin, full log in" \
        "build/lammps-plugin/build.log"
    "$PIP" install -q --no-build-isolation -c constraints.txt -e ".[test]"
    touch "$PLUGIN_STAMP"
    # TorchScript extensions of the reference models, as one plain directory to
    # pass as the model's extensions directory (mlipdrive.load(..., extensions=),
    # --extensions, pair_style ... extensions): sphericart-torch for SOAP-BPNN,
    # featomic-torch (with the featomic library it calls) for GAP.
    # --no-deps: their dependencies (torch, metatensor-torch, metatomic-torch) are
    # already in the venv (pip --target would otherwise put a second torch
    # there). Built aside, then swapped in.
    step "installing the models' TorchScript extensions into $EXTENSIONS"
    rm -rf "$EXTENSIONS.new"
    "$PIP" install -q --no-deps --target "$EXTENSIONS.new" -c constraints.txt \
        sphericart-torch featomic-torch featomic
    rm -rf "$EXTENSIONS"
    mv "$EXTENSIONS.new" "$EXTENSIONS"
    touch "$STAMP"
    step "done"
elif [ ! -f "$PLUGIN_STAMP" ] || [ -n "$(find $PLUGIN_INPUTS -newer "$PLUGIN_STAMP" 2>/dev/null)" ]; then
    step "rebuilding the LAMMPS plugin (its sources changed), full log in" \
        "build/lammps-plugin/build.log"
    lammps_plugin/build.sh "$VENV/bin/python"
    touch "$PLUGIN_STAMP"
fi
