#!/usr/bin/env bash
# (Re)build models/pet/pet-cual.pt, the small float32 Cu/Al PET test model.
#
#   models/pet/train.sh
#
# Steps: EMT data set (models/mace/make_dataset.py, the same data as the MACE
# model) -> `mtt train` (metatrain, tool venv) in the git-ignored scratch dir
# models/pet/run/ -> `mtt export` with metadata.yaml next to this script ->
# load it with metatomic alone (runtime venv), score it on the test set and
# time one step.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), both relative to the repository root.
# Tool venv used for the committed model: metatrain 2026.4.1, torch 2.13.0
# (python -m venv .venv-metatrain && .venv-metatrain/bin/pip install
# -c constraints.txt "metatrain[mace,soap-bpnn]"; PET needs no extra).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MTT_VENV="$ROOT/${MTT_VENV:-.venv-metatrain}"
RUNTIME_VENV="$ROOT/${RUNTIME_VENV:-.venv}"
RUN="$HERE/run"
MODEL="$HERE/pet-cual.pt"
# one thread: the machine is shared (see models/mace/train.sh)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

rm -rf "$RUN"
mkdir -p "$RUN"
cd "$RUN"

# 1. data set (deterministic, seed 0): run/data/{train,val,test}.xyz
"$RUNTIME_VENV/bin/python" "$ROOT/models/mace/make_dataset.py" data --seed 0

# 2. training; metatrain writes model.pt (exported) and model.ckpt here.
start=$(date +%s)
"$MTT_VENV/bin/mtt" train "$HERE/options.yaml" -o model.pt >train.log 2>&1 || {
    tail -n 40 train.log
    exit 1
}
echo "training wall time: $(($(date +%s) - start)) s"
grep -a "model has" train.log | sed -E 's/^\[[^]]*\]\[INFO\] - //'
grep -a "Epoch" train.log | sed -E 's/.*(Epoch: *[0-9]+).*(validation energy MAE[^|]*).*(validation forces MAE[^|]*).*(validation virial MAE[^|]*).*/\1 | \2| \3| \4/'
grep -a "best model" train.log | sed -E 's/^\[[^]]*\]\[INFO\] - //' || true

# 3. the committed artifact. PET needs no TorchScript extension, so
#    run/extensions/ stays empty; fail loudly if that ever changes.
if [ -n "$(ls -A extensions 2>/dev/null)" ]; then
    echo "error: model needs extensions: $(ls extensions)" >&2
    exit 1
fi
# re-export the kept checkpoint with a name and description (same weights as
# model.pt, which mtt train wrote without metadata)
"$MTT_VENV/bin/mtt" export model.ckpt -m "$HERE/metadata.yaml" -o "$MODEL" \
    >export.log 2>&1 || { tail -n 20 export.log; exit 1; }
ls -l "$MODEL"

# 4. load with metatomic alone, score on the held-out test set, time one step
"$RUNTIME_VENV/bin/python" "$ROOT/models/mace/evaluate.py" "$MODEL" data/test.xyz
"$RUNTIME_VENV/bin/python" "$ROOT/models/time_step.py" "$MODEL"
