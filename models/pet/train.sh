#!/usr/bin/env bash
# (Re)build models/pet/pet-cual.pt, the small float32 Cu/Al PET test model.
#
#   models/pet/train.sh
#
# Steps (models/train_family.sh, shared by every family): EMT data set
# (models/mace/make_dataset.py, the same data as the MACE model) -> `mtt
# train` (metatrain, tool venv) in the git-ignored scratch dir models/pet/run/
# -> `mtt export` with metadata.yaml next to this script -> load it with
# metatomic alone (runtime venv), score it on the test set and time one step.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), relative to the repository root or absolute.
# Tool venv used for the committed model: metatrain 2026.4.1, torch 2.13.0
# (python -m venv .venv-metatrain && .venv-metatrain/bin/pip install
# -c constraints.txt "metatrain[mace,soap-bpnn]"; PET needs no extra).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../train_family.sh" "$HERE"
