#!/usr/bin/env bash
# SOAP-BPNN at 8112 atoms, 1 and 2 ranks, interleaved (1 2 1 2), turbo:
#   benchmarks/results/ranks_short_range/soap_bpnn/run.sh   (from the checkout root)
# (the harness cannot run it: it has no way to pass an extensions directory)
set -euo pipefail
cd "$(dirname "$0")"
EXT=$(cd ../../../../.venv/extensions && pwd)
export OMP_NUM_THREADS=1
for round in 1 2; do
    for ranks in 1 2; do
        uptime > "load-${ranks}-${round}.txt"
        ../../../../.venv/bin/mlipdrive lammps --in in.soap -np "$ranks" -- \
            -var preset turbo -var ext "$EXT" -var steps 20 -log "log-${ranks}-${round}.lammps" > /dev/null
        uptime >> "load-${ranks}-${round}.txt"
    done
done
