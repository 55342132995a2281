#!/usr/bin/env bash
# The CUDA check of mlipdrive (issue 13; benchmarks/README.md, "GPU check").
#
# Here, with network, once: the wheels that a GPU machine with its own CUDA
# torch lacks (metatomic, metatensor, vesin, ase, i-PI: all py3-none), at the
# versions of this checkout's .venv, into .gpu-wheels/ (ignored by git):
#
#     benchmarks/gpu_check.sh download
#
# There (nothing to fetch; the checkout and .gpu-wheels/ travel as files):
#
#     benchmarks/gpu_check.sh run                    # device cuda, results in $OUT
#     benchmarks/gpu_check.sh run --device cpu --sizes "100" --check-sizes "108" \
#         --budget 0.2 --python .venv/bin/python      # dry run, no GPU
#
# `run` installs the wheels and mlipdrive's own packages (copied from this
# checkout) into a scratch folder, then writes into --out (default $OUT, else
# ./gpu-check-results):
#   gpu_check.json  correctness on the device (python -m mlipdrive.bench.gpu_check)
#   bench/          mlipdrive bench: ms/step of every Python-side engine and its
#                   reference on the device, default vs turbo, at --sizes atoms
#   gpu_check.log   everything both printed
# Options of run: --device DEV (cuda), --python PY (python3), --wheels DIR
# (.gpu-wheels), --no-install (use what PY already has, for tests), --out DIR,
# --sizes "1000 10000 100000", --check-sizes "108 1000", --budget S (0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODEL=$ROOT/models/mace/mace-cual.pt
# what the GPU image lacks; versions from this checkout's environment
NEEDED="metatomic-torch metatensor-torch metatensor-core metatensor-operations metatomic-ase
vesin vesin-torch ase ipi wigners"

download() {
    local python=${1:-.venv/bin/python} pins=""
    for name in $NEEDED; do
        pins="$pins $name==$("$python" -c "import importlib.metadata as m; print(m.version('$name'))")"
    done
    mkdir -p .gpu-wheels
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu-wheels $pins
    ls .gpu-wheels
}

install() {  # $1 python, $2 wheels (or "" for none), $3 scratch folder
    local python=$1 wheels=$2 site=$3/site
    mkdir -p "$site/mlipdrive" "$3/bin"
    if [ -n "$wheels" ]; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl
    fi
    # mlipdrive as pyproject.toml lays it out (mlipdrive, mlipdrive.ipi,
    # mlipdrive.lammps, mlipdrive.bench), and the tests' i-PI run helpers
    cp -r driver/mlipdrive/. "$site/mlipdrive/"
    cp -r ipi_client "$site/mlipdrive/ipi"
    cp -r lammps_plugin/python "$site/mlipdrive/lammps"
    cp -r benchmarks "$site/mlipdrive/bench"
    cp tests/ipi_testing.py "$site/"
    printf '#!%s\nimport sys\nfrom mlipdrive.cli import main\nsys.exit(main())\n' \
        "$python" > "$3/bin/mlipdrive"
    chmod +x "$3/bin/mlipdrive"
}

run() {
    local device=cuda python=python3 wheels=.gpu-wheels out=${OUT:-gpu-check-results}
    local sizes="1000 10000 100000" check_sizes="108 1000" budget=0.5
    while [ $# -gt 0 ]; do
        case $1 in
            --device) device=$2; shift 2 ;;
            --python) python=$2; shift 2 ;;
            --wheels) wheels=$2; shift 2 ;;
            --no-install) wheels=""; shift ;;
            --out) out=$2; shift 2 ;;
            --sizes) sizes=$2; shift 2 ;;
            --check-sizes) check_sizes=$2; shift 2 ;;
            --budget) budget=$2; shift 2 ;;
            *) echo "gpu_check.sh run: unknown option '$1' (see the head of $0)" >&2; exit 2 ;;
        esac
    done
    if [ -n "$wheels" ] && ! ls "$wheels"/*.whl >/dev/null 2>&1; then
        echo "gpu_check.sh: no wheels in '$wheels'; run 'benchmarks/gpu_check.sh download' where" \
            "pip reaches PyPI and carry the folder (or give --no-install)" >&2
        exit 2
    fi
    # absolute, and the virtual environment's own path (not its base interpreter)
    python=$("$python" -c "import sys; print(sys.executable)")
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/mlipdrive-gpu.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    install "$python" "$wheels" "$scratch"
    export PYTHONPATH=$scratch/site PATH=$scratch/bin:$scratch/site/bin:$PATH
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONUNBUFFERED=1
    mkdir -p "$out"
    exec > >(tee "$out/gpu_check.log") 2>&1
    local code=0
    "$python" -c "import torch, mlipdrive, metatomic.torch as m; print('torch', torch.__version__,
'cuda', torch.cuda.is_available(), '| mlipdrive from', mlipdrive.__file__, '| metatomic from', m.__file__)"
    # shellcheck disable=SC2086
    "$python" -m mlipdrive.bench.gpu_check --device "$device" --model "$MODEL" \
        --sizes $check_sizes --output "$out/gpu_check.json" || code=1
    # shellcheck disable=SC2086
    "$python" -m mlipdrive.bench --models "$MODEL" --device "$device" --sizes $sizes \
        --engines raw driver ase metatomic-ase ipi ipi-metatomic --settings default turbo \
        --ranks 1 --budget "$budget" --repeats 3 --warmup 3 --timeout 240 --no-progress \
        --output "$out/bench" || code=1
    echo "gpu_check.sh: $([ $code = 0 ] && echo done || echo 'done, with failures above')"
    return $code
}

case ${1:-} in
    download) shift; download "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n '2,26p' "$0"; exit 2 ;;
esac
