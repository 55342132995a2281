#!/usr/bin/env bash
# Run i-PI with mlipdrive's client on the shipped MACE model, and stop both
# sides cleanly: the client returns when i-PI sends EXIT, and i-PI is killed
# (and its socket file removed) if anything fails.
#
#   examples/ipi/run.sh                       # 200 steps, serial client
#   STEPS=20 RANKS=2 examples/ipi/run.sh      # 20 steps, client over 2 MPI ranks
#   MODEL=my-model.pt examples/ipi/run.sh     # another model (same elements)
#
# Outputs go to $WORKDIR (default: examples/ipi/run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
MODEL=$(realpath "${MODEL:-$here/../../models/mace/mace-cual.pt}")
STEPS=${STEPS:-200}
RANKS=${RANKS:-1}
WORKDIR=${WORKDIR:-$here/run}
ADDRESS="mlipdrive-example-$$"  # unique: several runs can share a machine
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

mkdir -p "$WORKDIR"
cd "$WORKDIR"
cp "$here/init.xyz" .
sed -e "s|<total_steps>.*</total_steps>|<total_steps> $STEPS </total_steps>|" \
    -e "s|<address>.*</address>|<address> $ADDRESS </address>|" \
    "$here/input.xml" > input.xml
rm -f RESTART EXIT simulation.*

ipi_pid=""
cleanup() {
    if [ -n "$ipi_pid" ] && kill -0 "$ipi_pid" 2>/dev/null; then
        kill "$ipi_pid" 2>/dev/null || true
        wait "$ipi_pid" 2>/dev/null || true
    fi
    rm -f "/tmp/ipi_$ADDRESS"
}
trap cleanup EXIT INT TERM

i-pi input.xml > ipi.log 2>&1 &
ipi_pid=$!

# the client waits (up to --connect-timeout) for i-PI to open its socket
client=(mlipdrive ipi --model "$MODEL" --structure init.xyz --unix "$ADDRESS" --timings)
if [ "$RANKS" -gt 1 ]; then
    client=(mpirun -np "$RANKS" "${client[@]}")
fi
"${client[@]}"

wait "$ipi_pid"  # i-PI writes its last outputs and exits after EXIT
ipi_pid=""
echo "done: $STEPS steps; properties in $WORKDIR/simulation.out"
