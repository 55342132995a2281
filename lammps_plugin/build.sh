#!/usr/bin/env bash
# Rebuild the plugin of a checkout's environment after C++ edits and install it
# where the `lammps.plugins` entry point points (<env>/lib/mlipdrive/lammps-plugin):
#
#     lammps_plugin/build.sh .venv/bin/python
#
# The same as the editable reinstall that tools/setup_env.sh does, without the
# dependencies: pip runs setup.py, which builds in build/lammps-plugin/ (kept, so
# only what changed recompiles; MLIPDRIVE_BUILD_JOBS jobs, default 2).
set -euo pipefail
PYTHON=${1:?usage: lammps_plugin/build.sh PYTHON}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$PYTHON" -m pip install -q --no-build-isolation --no-deps -e "$ROOT"
echo "mlipdrive LAMMPS plugin: $("$PYTHON" -m mlipdrive.cli lammps-plugin-path)"
