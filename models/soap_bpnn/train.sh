#!/usr/bin/env bash
# (Re)build models/soap_bpnn/soap-bpnn-cual.pt, the small float64 Cu/Al
# SOAP-BPNN test model (it needs the TorchScript extension sphericart-torch).
#
#   models/soap_bpnn/train.sh
#
# Steps: EMT data set (models/mace/make_dataset.py, the same data as the MACE
# model) -> `mtt train` (metatrain, tool venv) in the git-ignored scratch dir
# models/soap_bpnn/run/ -> `mtt export` with metadata.yaml next to this script
# -> load it with the runtime venv and ITS extensions directory
# (.venv/extensions: the pinned sphericart-torch that tools/setup_env.sh puts
# there), score it on the test set and time one step.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), both relative to the repository root.
# Tool venv used for the committed model: metatrain 2026.4.1 with torch-spex
# 0.1.0, sphericart-torch 2.0.4, torch 2.13.0 (python -m venv .venv-metatrain &&
# .venv-metatrain/bin/pip install -c constraints.txt "metatrain[mace,soap-bpnn]").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MTT_VENV="$ROOT/${MTT_VENV:-.venv-metatrain}"
RUNTIME_VENV="$ROOT/${RUNTIME_VENV:-.venv}"
EXTENSIONS="$RUNTIME_VENV/extensions"
RUN="$HERE/run"
MODEL="$HERE/soap-bpnn-cual.pt"
# one thread: the machine is shared (see models/mace/train.sh)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

if [ ! -d "$EXTENSIONS/sphericart" ]; then
    echo "error: $EXTENSIONS has no sphericart-torch; run tools/setup_env.sh (make setup)" >&2
    exit 1
fi

rm -rf "$RUN"
mkdir -p "$RUN"
cd "$RUN"

# 1. data set (deterministic, seed 0): run/data/{train,val,test}.xyz
"$RUNTIME_VENV/bin/python" "$ROOT/models/mace/make_dataset.py" data --seed 0

# 2. training; metatrain writes model.pt (exported), model.ckpt and the
#    extensions it collected (extensions/) here.
start=$(date +%s)
"$MTT_VENV/bin/mtt" train "$HERE/options.yaml" -o model.pt >train.log 2>&1 || {
    tail -n 40 train.log
    exit 1
}
echo "training wall time: $(($(date +%s) - start)) s"
grep -a "model has" train.log | sed -E 's/^\[[^]]*\]\[INFO\] - //'
grep -a "Epoch" train.log | sed -E 's/.*(Epoch: *[0-9]+).*(validation energy MAE[^|]*).*(validation forces MAE[^|]*).*(validation virial MAE[^|]*).*/\1 | \2| \3| \4/'
grep -a "best model" train.log | sed -E 's/^\[[^]]*\]\[INFO\] - //' || true

# 3. the committed artifact, re-exported from the kept checkpoint with a name
#    and description. mtt copies the extension libraries of the training venv
#    into extensions/; the runtime must not depend on them, only on the pinned
#    pip package in .venv/extensions. Check that they are the same files.
"$MTT_VENV/bin/mtt" export model.ckpt -m "$HERE/metadata.yaml" -o "$MODEL" \
    >export.log 2>&1 || { tail -n 20 export.log; exit 1; }
ls -l "$MODEL"
(cd extensions && find . -type f | sort) | while read -r lib; do
    if cmp -s "extensions/$lib" "$EXTENSIONS/$lib"; then
        echo "extension $lib: identical in $EXTENSIONS"
    else
        echo "warning: extension $lib differs from (or is missing in) $EXTENSIONS" >&2
    fi
done

# 4. load with the runtime venv's extensions, score on the held-out test set,
#    time one step
"$RUNTIME_VENV/bin/python" "$HERE/evaluate.py" "$MODEL" "$EXTENSIONS" data/test.xyz
"$RUNTIME_VENV/bin/python" "$ROOT/models/time_step.py" "$MODEL" --extensions "$EXTENSIONS"
