#!/usr/bin/env bash
# (Re)build models/pet_llpr/pet-cual-llpr.pt: a small float64 Cu/Al PET with two
# energy variants and a per-atom LLPR energy uncertainty for each.
#
#   models/pet_llpr/train.sh
#
# Steps (the shared ones from models/train_family.sh): EMT data set + Morse
# labels (models/add_morse_labels.py) in the git-ignored scratch dir
# models/pet_llpr/run/ -> stage 1, `mtt train options.yaml` (PET: `energy`
# from EMT, `energy/morse` from Morse) -> stage 2, `mtt train llpr.yaml`
# (metatrain's LLPR around the stage-1 checkpoint) -> `mtt export` with
# metadata.yaml -> standard_names.py (metatomic's names for the variant
# uncertainties, auxiliary outputs left out) -> with the runtime venv only:
# score both variants on the test set, time one step, and show where the
# uncertainty warning fires (uncertainty_check.py).
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), relative to the repository root or absolute.
# Tool venv used for the committed model: metatrain 2026.4.1, torch 2.13.0
# (python -m venv .venv-metatrain && .venv-metatrain/bin/pip install
# -c constraints.txt "metatrain[mace,soap-bpnn]"; PET and LLPR need no extra).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../train_family.sh"

start_run "$HERE"
make_data
"$PYTHON" "$MODELS_DIR/add_morse_labels.py" data
mtt_train "$HERE/options.yaml" model
mtt_train "$HERE/llpr.yaml" llpr
check_extensions
export_model llpr.ckpt llpr-metatrain.pt
"$PYTHON" "$HERE/standard_names.py" llpr-metatrain.pt "$MODEL"
ls -l "$MODEL"
"$PYTHON" "$MODELS_DIR/mace/evaluate.py" "$MODEL" data/test.xyz
"$PYTHON" "$MODELS_DIR/mace/evaluate.py" "$MODEL" data/test.xyz --variant morse | tail -n 5
"$PYTHON" "$MODELS_DIR/time_step.py" "$MODEL"
"$PYTHON" "$HERE/uncertainty_check.py" "$MODEL"
