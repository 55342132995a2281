#!/usr/bin/env bash
# Before/after of leaving out the ghosts out of reach: the same input as run.sh
# on 2 ranks with the checkout's plugin and with another build of it (e.g. the
# parent commit's, copied from .venv/lib/mlipdrive/lammps-plugin), interleaved:
#   benchmarks/results/ranks_short_range/soap_bpnn/ab.sh OTHER_PLUGIN_DIR
set -euo pipefail
OTHER=$(cd "${1:?usage: ab.sh OTHER_PLUGIN_DIR}" && pwd)
cd "$(dirname "$0")"
ROOT=$(cd ../../../.. && pwd)
EXT="$ROOT/.venv/extensions"
export OMP_NUM_THREADS=1
run() {  # PLUGIN_DIR LOG
    "$ROOT/.venv/bin/python" - "$1" "$2" "$EXT" <<'PY'
import subprocess, sys
from mlipdrive import lammps
plugin, log, ext = sys.argv[1:]
env = lammps.lmp_environment(ranks=2)
env["LAMMPS_PLUGIN_PATH"] = plugin
arguments = ["-var", "preset", "turbo", "-var", "ext", ext, "-var", "steps", "20",
             "-log", log, "-screen", "none"]
subprocess.run(lammps.lmp_command("in.soap", 2, arguments), env=env, check=True,
               stderr=subprocess.DEVNULL)
PY
}
for round in 1 2; do
    run "$ROOT/.venv/lib/mlipdrive/lammps-plugin" "ab-this-${round}.lammps"
    run "$OTHER" "ab-other-${round}.lammps"
done
for log in ab-*.lammps; do
    printf '%-22s %s | %s\n' "$log" "$(grep 'Loop time' "$log" | tail -2 | awk '{printf "%s ", $4}')" \
        "$(grep 'System on rank 0' "$log" | tail -1 | sed 's/.*rank 0: //')"
done
