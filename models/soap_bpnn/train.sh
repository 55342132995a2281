#!/usr/bin/env bash
# (Re)build models/soap_bpnn/soap-bpnn-cual.pt, the small float64 Cu/Al
# SOAP-BPNN test model (it needs the TorchScript extension sphericart-torch).
#
#   models/soap_bpnn/train.sh
#
# Steps (models/train_family.sh with --extensions): EMT data set
# (models/mace/make_dataset.py, the same data as the MACE model) -> `mtt
# train` (metatrain, tool venv) in the git-ignored scratch dir
# models/soap_bpnn/run/ -> check that the extension libraries mtt collected
# are the runtime venv's pinned ones -> `mtt export` with metadata.yaml next to
# this script -> load it with the runtime venv and ITS extensions directory
# (.venv/extensions: the pinned sphericart-torch that tools/setup_env.sh puts
# there), score it on the test set (evaluate.py here) and time one step.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), relative to the repository root or absolute.
# Tool venv used for the committed model: metatrain 2026.4.1 with torch-spex
# 0.1.0, sphericart-torch 2.0.4, torch 2.13.0 (python -m venv .venv-metatrain &&
# .venv-metatrain/bin/pip install -c constraints.txt "metatrain[mace,soap-bpnn]").
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../train_family.sh" "$HERE" --extensions
