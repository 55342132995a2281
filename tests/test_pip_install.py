"""README's install block, as written, in a copy of the repository: a new venv,
the build requirements, a non-editable ``pip install .``, and a plain ``lmp -in
examples/lammps/in.md`` that finds the plugin with no other step. It runs in a
terminal (``script``), as a user runs it: the plugin build's progress must show
there, although pip hides a build's output without -v."""

import os
import pathlib
import re
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 1800


def install_block() -> str:
    blocks = re.findall(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    found = [block for block in blocks if "pip install --no-build-isolation" in block]
    assert len(found) == 1, "README.md should show one install block"
    return found[0]


def copy_checkout(target: pathlib.Path):
    """The files git knows of (tracked, or new and not ignored): no .venv, no build/."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_install_block_in_a_new_venv(tmp_path):
    checkout = tmp_path / "mlipdrive"
    copy_checkout(checkout)
    (tmp_path / "install.sh").write_text(install_block())
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("LAMMPS_PLUGIN_PATH", "VIRTUAL_ENV", "LD_PRELOAD", "PYTHONPATH"):
        env.pop(name, None)
    # script: the block's own terminal (-e: its exit status, -f: output as it comes)
    process = subprocess.run(["script", "-qefc", f"bash -e {tmp_path / 'install.sh'}", "/dev/null"],
                             cwd=checkout, env=env, capture_output=True, text=True,
                             timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
    output = (process.stdout + process.stderr).replace("\r\n", "\n")
    assert process.returncode == 0, output[-6000:]
    # the plugin build says where its log is and how far it is, file by file
    # (ninja's [done/total] lines: CMake uses ninja where there is one)
    assert f"full log: {checkout / 'build' / 'lammps-plugin' / 'build.log'}" in output, output[-6000:]
    progress = [(int(done), int(total)) for done, total in
                re.findall(r"^mlipdrive:\s+\[(\d+)/(\d+)\] ", output, re.M)]
    assert len(progress) >= 5 and progress[-1][0] == progress[-1][1], output[-6000:]
    assert "Building CXX object" in output, output[-6000:]
    plugin_dir = checkout / ".venv" / "lib" / "mlipdrive" / "lammps-plugin"
    assert f"Loaded 1 plugins from {plugin_dir}" in output
    # a non-editable install: the package is a copy in site-packages
    assert not list((checkout / ".venv").glob("lib/python*/site-packages/__editable__*"))
    assert re.search(r"^\s+200\s", output, re.M), output[-3000:]
