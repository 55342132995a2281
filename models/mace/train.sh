#!/usr/bin/env bash
# (Re)build models/mace/mace-cual.pt, the small Cu/Al MACE test model.
#
#   models/mace/train.sh
#
# Steps: EMT data set -> `mtt train` (metatrain, tool venv) in the git-ignored
# scratch dir models/mace/run/ -> copy the exported model next to this script
# -> load it with metatomic alone (runtime venv) and score it on the test set.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), both relative to the repository root.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MTT_VENV="$ROOT/${MTT_VENV:-.venv-metatrain}"
RUNTIME_VENV="$ROOT/${RUNTIME_VENV:-.venv}"
RUN="$HERE/run"
# One thread by default: on a shared 2-core machine, 2 OpenMP threads competing
# with other jobs ran an epoch 16x slower (4 min instead of 15 s).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

rm -rf "$RUN"
mkdir -p "$RUN"
cd "$RUN"

# 1. data set (deterministic, seed 0): run/data/{train,val,test}.xyz
"$RUNTIME_VENV/bin/python" "$HERE/make_dataset.py" data --seed 0

# 2. training; metatrain writes model.pt (exported) and model.ckpt here.
#    Warnings from e3nn/omegaconf are noise; the full log is in run/train.log.
start=$(date +%s)
"$MTT_VENV/bin/mtt" train "$HERE/options.yaml" -o model.pt >train.log 2>&1 || {
    tail -n 40 train.log
    exit 1
}
echo "training wall time: $(($(date +%s) - start)) s"
grep -a "model has" train.log | sed -E 's/^\[[^]]*\]\[INFO\] - //'
grep -a "Epoch" train.log | sed -E 's/.*(Epoch: *[0-9]+).*(validation energy MAE[^|]*).*(validation forces MAE[^|]*).*(validation virial MAE[^|]*).*/\1 | \2| \3| \4/'

# 3. the committed artifact. A MACE model needs no TorchScript extension, so
#    run/extensions/ stays empty; fail loudly if that ever changes.
if [ -n "$(ls -A extensions 2>/dev/null)" ]; then
    echo "error: model needs extensions: $(ls extensions)" >&2
    exit 1
fi
# re-export the final checkpoint with a name and description (same weights as
# model.pt, which mtt train wrote without metadata)
"$MTT_VENV/bin/mtt" export model.ckpt -m "$HERE/metadata.yaml" -o "$HERE/mace-cual.pt" \
    >export.log 2>&1 || { tail -n 20 export.log; exit 1; }
ls -l "$HERE/mace-cual.pt"

# 4. load with metatomic alone and score on the held-out test set
"$RUNTIME_VENV/bin/python" "$HERE/evaluate.py" "$HERE/mace-cual.pt" data/test.xyz
