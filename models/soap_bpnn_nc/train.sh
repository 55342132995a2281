#!/usr/bin/env bash
# (Re)build models/soap_bpnn_nc/soap-bpnn-cual-nc.pt: a small float64 Cu/Al
# SOAP-BPNN with a conservative energy and non-conservative force and stress
# heads (it needs the TorchScript extension sphericart-torch).
#
#   models/soap_bpnn_nc/train.sh
#
# Steps (models/train_family.sh with the runtime venv's extensions, as
# models/soap_bpnn/train.sh): EMT data set -> `mtt train` in the git-ignored
# scratch dir models/soap_bpnn_nc/run/ -> extensions check -> `mtt export` with
# metadata.yaml -> with the runtime venv and its extensions directory: score
# on the test set, compare the direct heads with -dE/dr and the strain
# derivative (nc_check.py) and time one step with and without the direct heads.
# Environment overrides: MTT_VENV (default .venv-metatrain), RUNTIME_VENV
# (default .venv), relative to the repository root or absolute.
# Tool venv used for the committed model: as models/soap_bpnn/train.sh.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../train_family.sh"

EXTENSIONS="$(runtime_extensions)"
start_run "$HERE"
make_data
train_export "$EXTENSIONS"
evaluate_model "$EXTENSIONS"
"$PYTHON" "$MODELS_DIR/time_step.py" "$MODEL" --extensions "$EXTENSIONS" --non-conservative
"$PYTHON" "$HERE/nc_check.py" "$MODEL" data/test.xyz --extensions "$EXTENSIONS"
