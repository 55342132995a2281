#!/usr/bin/env bash
# (Re)build models/mace/mace-cual.pt, the small Cu/Al MACE test model.
#
#   models/mace/train.sh
#
# Steps (models/train_family.sh, shared by every family): EMT data set ->
# `mtt train` (metatrain, tool venv) in the git-ignored scratch dir
# models/mace/run/ -> `mtt export` with metadata.yaml next to this script ->
# load it with metatomic alone (runtime venv), score it on the test set and
# time one step.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), relative to the repository root or absolute.
# Tool venv used for the committed model: metatrain 2026.4.1, mace-torch
# 0.3.14, torch 2.13.0 (python -m venv .venv-metatrain &&
# .venv-metatrain/bin/pip install -c constraints.txt "metatrain[mace,soap-bpnn]").
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../train_family.sh" "$HERE"
