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
if [ ! -f "$STAMP" ] || [ -n "$(find $INPUTS -newer "$STAMP" 2>/dev/null)" ]; then
    "$VENV/bin/pip" install -q --upgrade "pip==26.3" "setuptools==84.2.1" "wheel==0.48.0"
    "$VENV/bin/pip" install -q -c constraints.txt torch==2.13.0
    # no build isolation: an isolated build would fetch its own (CUDA) torch
    "$VENV/bin/pip" install -q --no-build-isolation -c constraints.txt -e ".[test]"
    touch "$STAMP"
fi
if [ -x lammps_plugin/build.sh ]; then
    lammps_plugin/build.sh "$VENV/bin/python"
fi
