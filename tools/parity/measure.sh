#!/usr/bin/env bash
# The cost of metatomic's options in mlipdrive, measured with the harness
# (mlipdrive bench), one torch thread, 1 rank:
#
#   tools/parity/measure.sh UNCERTAINTY_MODEL.pt NON_CONSERVATIVE_MODEL.pt [EXTENSIONS]
#
# 1. uncertainty/: each engine with uncertainty_threshold off and on (the
#    default, 0.1 eV/atom) on a model with a per-atom energy_uncertainty: the
#    step's cost with the uncertainty head and the check. The plugin's log line
#    'uncertainty check X' is the check alone (copy, MPI reduction), without
#    the model's head.
# 2. non-conservative.md: non_conservative off and on in LAMMPS (tools/parity/
#    nc_drift.py: ms/step, the speed-up of skipping the backward pass, and the
#    NVE energy drift of the heads); EXTENSIONS: the NC model's extensions
#    directory, if it needs one (the harness cannot load such a model).
# Results go to tools/parity/results/ (bench.md, bench.json in each folder).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
UNCERTAINTY=$(realpath "${1:?usage: $0 UNCERTAINTY_MODEL.pt NON_CONSERVATIVE_MODEL.pt [EXTENSIONS]}")
HEADS=$(realpath "${2:?usage: $0 UNCERTAINTY_MODEL.pt NON_CONSERVATIVE_MODEL.pt [EXTENSIONS]}")
EXTENSIONS=${3:+$(realpath "$3")}
ATOMS=1000
RESULTS=$ROOT/tools/parity/results
BENCH=("$ROOT/.venv/bin/mlipdrive" bench --sizes "$ATOMS" --ranks 1 --threads 1 --no-progress)
export OMP_NUM_THREADS=1

"${BENCH[@]}" --models "$UNCERTAINTY" --engines lammps ase ipi --rounds 2 \
    --settings "preset=default,uncertainty_threshold=off" default \
    --output "$RESULTS/uncertainty"
"$ROOT/.venv/bin/python" "$ROOT/tools/parity/nc_drift.py" "$HEADS" --repeat 3 --steps 500 \
    ${EXTENSIONS:+--extensions "$EXTENSIONS"} --output "$RESULTS/non-conservative.md"

# 3. the check alone, from the plugin's own timer (rank 0), 864 Cu/Al atoms
mkdir -p "$RESULTS/check-alone"
cd "$RESULTS/check-alone"
cat > in.check <<LAMMPS
units metal
lattice fcc 3.75
region box block 0 6 0 6 0 6
create_box 2 box
create_atoms 1 box
set type 1 type/fraction 2 0.5 4321
mass 1 63.546
mass 2 26.98
velocity all create 300 42
pair_style mlipdrive $UNCERTAINTY
pair_coeff * * Cu Al
fix 1 all nve
thermo 50
run 100
LAMMPS
for ranks in 1 2; do
    "$ROOT/.venv/bin/mlipdrive" lammps --in in.check -np "$ranks" > "log.$ranks-ranks" 2>&1
    grep "evaluations on rank 0" "log.$ranks-ranks"
done
