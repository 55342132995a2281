#!/usr/bin/env bash
# The steps every metatrain test model of models/ shares, in one place.
#
#   models/train_family.sh FAMILY_DIR [--extensions]
#
# e.g. `models/train_family.sh models/pet` (what models/pet/train.sh runs).
# A family directory holds metatrain's options.yaml and a metadata.yaml whose
# `name` gives the model file, FAMILY_DIR/<name>.pt. The steps:
#   1. EMT data set (models/mace/make_dataset.py, seed 0) in the git-ignored
#      scratch directory FAMILY_DIR/run/;
#   2. `mtt train options.yaml` (metatrain, tool venv), progress summarised;
#   3. extensions check: none may appear, or with --extensions the ones mtt
#      collected must be the runtime venv's pinned copies;
#   4. `mtt export` of the kept checkpoint with metadata.yaml -> <name>.pt;
#   5. load it with the runtime venv only, score it on the held-out test set
#      (models/mace/evaluate.py; with --extensions models/soap_bpnn/evaluate.py,
#      given the runtime venv's extensions directory) and time one step
#      (models/time_step.py).
# Sourced instead (`source models/train_family.sh`), it only defines the step
# functions, for a family whose recipe has more steps (models/pet_llpr,
# models/soap_bpnn_nc).
#
# Environment: MTT_VENV (default .venv-metatrain) and RUNTIME_VENV (default
# .venv), relative to the repository root or absolute; OMP_NUM_THREADS
# (default 1: on a shared 2-core machine, 2 OpenMP threads competing with other
# jobs ran an epoch 16x slower, 4 min instead of 15 s).
set -euo pipefail

MODELS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$MODELS_DIR/.." && pwd)"

absolute_venv() {  # a venv path relative to the repository root, or absolute
    case "$1" in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac
}
MTT_VENV="$(absolute_venv "${MTT_VENV:-.venv-metatrain}")"
RUNTIME_VENV="$(absolute_venv "${RUNTIME_VENV:-.venv}")"
PYTHON="$RUNTIME_VENV/bin/python"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# start_run FAMILY_DIR: set HERE, RUN and MODEL (FAMILY_DIR/<metadata name>.pt),
# then start from an empty FAMILY_DIR/run/ and work there.
start_run() {
    HERE="$(cd "$1" && pwd)"
    RUN="$HERE/run"
    local name
    name="$(sed -n 's/^name: *//p' "$HERE/metadata.yaml")"
    MODEL="$HERE/$name.pt"
    rm -rf "$RUN"
    mkdir -p "$RUN"
    cd "$RUN"
}

# make_data: the EMT data set, run/data/{train,val,test}.xyz (deterministic)
make_data() {
    "$PYTHON" "$MODELS_DIR/mace/make_dataset.py" data --seed 0
}

# mtt_train OPTIONS NAME: `mtt train` writing NAME.pt and NAME.ckpt here, its
# log in NAME.log (warnings from e3nn/omegaconf are noise); print the epochs.
mtt_train() {
    local start
    start=$(date +%s)
    "$MTT_VENV/bin/mtt" train "$1" -o "$2.pt" >"$2.log" 2>&1 || {
        tail -n 40 "$2.log"
        exit 1
    }
    echo "$2: training wall time $(($(date +%s) - start)) s"
    grep -a "model has" "$2.log" | sed -E 's/^\[[^]]*\]\[INFO\] - //' || true
    grep -a "Epoch" "$2.log" | sed -E 's/.*(Epoch: *[0-9]+).*(validation energy MAE[^|]*).*(validation forces MAE[^|]*).*(validation virial MAE[^|]*).*/\1 | \2| \3| \4/' || true
    grep -a "best model" "$2.log" | sed -E 's/^\[[^]]*\]\[INFO\] - //' || true
}

# check_extensions [RUNTIME_EXTENSIONS]: without an argument the model must
# need no TorchScript extension (run/extensions/ empty: fail loudly otherwise);
# with one, every library mtt collected must be byte-identical there (the
# runtime uses only the pinned pip package, never the copies in run/).
check_extensions() {
    if [ $# -eq 0 ]; then
        if [ -n "$(ls -A extensions 2>/dev/null)" ]; then
            echo "error: model needs extensions: $(ls extensions)" >&2
            exit 1
        fi
        return
    fi
    (cd extensions && find . -type f | sort) | while read -r lib; do
        if cmp -s "extensions/$lib" "$1/$lib"; then
            echo "extension $lib: identical in $1"
        else
            echo "warning: extension $lib differs from (or is missing in) $1" >&2
        fi
    done
}

# export_model CHECKPOINT OUT: re-export a checkpoint with the family's name and
# description (metadata.yaml); the model.pt of `mtt train` has no metadata.
export_model() {
    "$MTT_VENV/bin/mtt" export "$1" -m "$HERE/metadata.yaml" -o "$2" \
        >export.log 2>&1 || { tail -n 20 export.log; exit 1; }
    ls -l "$2"
}

# runtime_extensions [PACKAGE]: the runtime venv's extensions directory, which
# must hold PACKAGE (default sphericart: sphericart-torch; featomic for GAP)
runtime_extensions() {
    local extensions="$RUNTIME_VENV/extensions" package="${1:-sphericart}"
    if [ ! -d "$extensions/$package" ]; then
        echo "error: $extensions has no $package; run tools/setup_env.sh (make setup)" >&2
        exit 1
    fi
    echo "$extensions"
}

# train_export [EXTENSIONS]: steps 2-4, options.yaml -> MODEL
train_export() {
    mtt_train "$HERE/options.yaml" model
    check_extensions "$@"
    export_model model.ckpt "$MODEL"
}

# evaluate_model [EXTENSIONS]: step 5, score MODEL on run/data/test.xyz and time it
evaluate_model() {
    if [ $# -gt 0 ]; then
        "$PYTHON" "$MODELS_DIR/soap_bpnn/evaluate.py" "$MODEL" "$1" data/test.xyz
        "$PYTHON" "$MODELS_DIR/time_step.py" "$MODEL" --extensions "$1"
    else
        "$PYTHON" "$MODELS_DIR/mace/evaluate.py" "$MODEL" data/test.xyz
        "$PYTHON" "$MODELS_DIR/time_step.py" "$MODEL"
    fi
}

# train_family FAMILY_DIR [--extensions]: the whole recipe above
train_family() {
    local extensions=()
    if [ "${2:-}" = "--extensions" ]; then
        extensions=("$(runtime_extensions)")
    fi
    start_run "$1"
    make_data
    train_export "${extensions[@]}"
    evaluate_model "${extensions[@]}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    train_family "$@"
fi
