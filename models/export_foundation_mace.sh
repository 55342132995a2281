#!/usr/bin/env bash
# Turn a mace-torch model file (e.g. a MACE-MP/MATPES/OMAT foundation `*.model`)
# into a metatomic `.pt` that mlipdrive, LAMMPS and i-PI can run:
#
#   models/export_foundation_mace.sh path/to/foundation.model out.pt [HEAD]
#
# HEAD: head name, required only for multi-head models (e.g. mace-mh-1).
# Environment: MTT (default: .venv-metatrain/bin/mtt from the repository root,
# else `mtt` on PATH) from a venv with `metatrain[mace]`; PRECISION (64 or 32,
# default 64) is the dtype of the exported model.
#
# Why `mtt train` with 0 epochs: metatrain's MACE architecture (option
# `architecture.model.mace_model`) wraps the loaded mace-torch module and moves
# its E0s and scale/shift into metatrain's composition model and scaler; a
# training run with `num_epochs: 0` sets those up and then exports the model,
# weights unchanged. metatrain needs a (dummy) training set for that: one
# structure made of an element the model knows, carrying an energy in eV, so
# that the exported model declares eV / angstrom as its units.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,6p' "$0"
    exit 1
fi
MODEL="$(realpath "$1")"
OUT="$(realpath -m "$2")"
HEAD="${3:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${MTT:-}" ]; then
    if [ -x "$ROOT/.venv-metatrain/bin/mtt" ]; then MTT="$ROOT/.venv-metatrain/bin/mtt"; else MTT=mtt; fi
fi
PYTHON="$(dirname "$(command -v "$MTT")")/python"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# dummy data set: a two-atom cell of the first element the model supports
"$PYTHON" - "$MODEL" <<'EOF'
import sys, torch, ase, ase.io
model = torch.load(sys.argv[1], weights_only=False, map_location="cpu")
z = int(model.atomic_numbers[0])
atoms = ase.Atoms(numbers=[z, z], positions=[[0, 0, 0], [1.5, 1.5, 1.5]],
                  cell=[4, 4, 4], pbc=True)
atoms.info["energy"] = 0.0
ase.io.write("dummy.xyz", atoms, format="extxyz")
EOF

cat >options.yaml <<EOF
base_precision: ${PRECISION:-64}
device: cpu
final_eval: false
architecture:
  name: experimental.mace
  model:
    mace_model: $MODEL
    mace_head_target: energy
    ${HEAD:+mace_head_name: $HEAD}
  training:
    num_epochs: 0
    batch_size: 1
training_set: &data
  systems: {read_from: dummy.xyz, length_unit: angstrom}
  targets:
    energy: {key: energy, unit: eV, forces: false, stress: false}
validation_set: *data
EOF

"$MTT" train options.yaml -o model.pt >export.log 2>&1 || {
    tail -n 30 export.log
    exit 1
}
if [ -n "$(ls -A extensions 2>/dev/null)" ]; then
    echo "warning: the model needs TorchScript extensions; copying them to $OUT.extensions/" >&2
    cp -r extensions "$OUT.extensions"
fi
cp model.pt "$OUT"
echo "exported $MODEL -> $OUT"
