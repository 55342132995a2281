#!/usr/bin/env bash
# (Re)build models/pet_lr/pet-lr-cual.pt, the small Cu/Al long-range PET test model.
#
#   models/pet_lr/train.sh
#
# The shared steps of models/train_family.sh (EMT data, `mtt train`, `mtt
# export` with metadata.yaml, score and timing with the runtime venv alone).
# Tool venv used for the committed model: metatrain 2026.4.1, torch 2.13.0,
# torch-pme 0.5.0 (python -m venv .venv-metatrain && .venv-metatrain/bin/pip
# install -c constraints.txt "metatrain[pet]==2026.4.1" torch-pme).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../train_family.sh" "$HERE"
