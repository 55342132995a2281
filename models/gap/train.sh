#!/usr/bin/env bash
# (Re)build models/gap/gap-cual.pt, the tiny float64 Cu/Al GAP test model: its
# weights live in metatensor TensorMaps and it needs the TorchScript extension
# featomic-torch.
#
#   models/gap/train.sh
#
# Steps (the shared ones from models/train_family.sh): EMT data set
# (models/mace/make_dataset.py, the same data as the other families) in the
# git-ignored scratch dir models/gap/run/ -> `mtt train options.yaml` (GAP fits
# in one linear solve: no epochs) -> check that the extension libraries mtt
# collected are the runtime venv's pinned ones -> add_metadata.py (metatrain's
# GAP writes no checkpoint, and `mtt export` of an exported .pt keeps its
# metadata: the name and description of metadata.yaml are added there) -> load
# it with the runtime venv and ITS extensions directory (.venv/extensions: the
# pinned featomic-torch that tools/setup_env.sh puts there), score it on the
# test set and time one step.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), relative to the repository root or absolute.
# Tool venv used for the committed model: metatrain 2026.4.1 with featomic-torch
# 0.7.6, featomic 0.6.7, torch 2.13.0 (python -m venv .venv-metatrain &&
# .venv-metatrain/bin/pip install -c constraints.txt "metatrain[gap]==2026.4.1").
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../train_family.sh"

EXTENSIONS="$(runtime_extensions featomic)"
start_run "$HERE"
make_data
mtt_train "$HERE/options.yaml" model
check_extensions "$EXTENSIONS"
"$MTT_VENV/bin/python" "$HERE/add_metadata.py" model.pt "$HERE/metadata.yaml" "$MODEL" extensions
ls -l "$MODEL"
evaluate_model "$EXTENSIONS"
