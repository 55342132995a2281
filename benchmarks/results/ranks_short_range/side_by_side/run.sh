#!/usr/bin/env bash
# The 2-rank bound on this machine, in one run: LJ at 32 000 atoms on 1 and 2
# ranks, beside 16 000 atoms (one rank's half, no ghosts) on 1 rank alone and
# two such jobs side by side (what two ranks would cost if a rank had no ghost
# atoms and no pair shared with the other), 2 rounds interleaved:
#   benchmarks/results/ranks_short_range/side_by_side/run.sh   (from the checkout root)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=../../../..
MODEL=$(mktemp -d)/lj.pt
"$ROOT/.venv/bin/python" "$ROOT/models/lj/export_lj.py" "$MODEL" > /dev/null
export OMP_NUM_THREADS=1
lmp() {  # RANKS NZ LOG
    "$ROOT/.venv/bin/mlipdrive" lammps --in in.lj -np "$1" -- -var model "$MODEL" \
        -var nz "$2" -var steps 200 -log "$3" -screen none
}
for round in 1 2; do
    uptime > "load-${round}.txt"
    lmp 1 20 "log-32000-1rank-${round}.lammps"
    lmp 2 20 "log-32000-2ranks-${round}.lammps"
    lmp 1 10 "log-16000-alone-${round}.lammps"
    lmp 1 10 "log-16000-side-a-${round}.lammps" & lmp 1 10 "log-16000-side-b-${round}.lammps"
    wait
    uptime >> "load-${round}.txt"
done
for log in log-*.lammps; do
    printf '%-32s %s\n' "$log" "$(grep 'Loop time' "$log" | tail -1)"
done
