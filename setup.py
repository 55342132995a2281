"""pip's build hook: the LAMMPS plugin, built with CMake, installed as data.

Everything else is in pyproject.toml. The plugin (libmlipdriveplugin.so and
libmlipdrive_pair.so) goes to <env>/lib/mlipdrive/lammps-plugin, the folder that
mlipdrive's ``lammps.plugins`` entry point names, and its sources to
<env>/share/mlipdrive/lammps_plugin (for ``mlipdrive build-plugin``). The CMake
build folder build/lammps-plugin/ is kept: an editable reinstall recompiles only
what changed. Build without isolation (see pyproject.toml).
"""

import os
import pathlib
import shutil
import sys

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.dist import Distribution

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "lammps_plugin" / "python"))
import plugin_build  # noqa: E402  (standard library only; mlipdrive may not be importable yet)

BUILD_DIR = ROOT / "build" / "lammps-plugin"
STAGE_DIR = BUILD_DIR / "stage"
PLUGIN_FOLDER = "lib/mlipdrive/lammps-plugin"  # under sys.prefix; mlipdrive.lammps.plugin_directory()
SOURCE_PATTERNS = ("*.cpp", "*.h", "*.py", "CMakeLists.txt", "cmake/*.cmake")


class BuildLammpsPlugin(Command):
    """CMake-build the plugin for this environment's torch and lammps wheel."""

    description = "build the LAMMPS plugin (lammps_plugin/) with CMake"
    user_options = []

    def initialize_options(self):
        self.editable_mode = False  # set by setuptools for `pip install -e`

    def finalize_options(self):
        pass

    def run(self):
        jobs = int(os.environ.get("MLIPDRIVE_BUILD_JOBS", "2"))
        log = _terminal_log()
        plugin_build.build(BUILD_DIR, STAGE_DIR, python=sys.executable, jobs=jobs, log=log)
        log(f"mlipdrive: LAMMPS plugin built; it goes to {pathlib.Path(sys.prefix) / PLUGIN_FOLDER}")
        if self.editable_mode:
            # setuptools leaves data_files out of editable wheels (it looks for
            # has_data, not has_data_files): put the plugin in place here
            target = pathlib.Path(sys.prefix) / PLUGIN_FOLDER
            target.mkdir(parents=True, exist_ok=True)
            for name in plugin_build.PLUGIN_FILES:
                shutil.copy2(STAGE_DIR / name, target / (name + ".new"))
                os.replace(target / (name + ".new"), target / name)  # never a half-written file


def _terminal_log():
    """Where the build's progress goes. pip shows a build backend's output only
    with -v (it reads it from a pipe); the terminal pip runs in, when there is
    one, shows it always; else stderr (pip -v, and pip's report of a failure)."""
    try:
        stream = open("/dev/tty", "w")
        # a line of its own: pip's "Building wheel ... " may not have ended yet
        print(file=stream)
    except OSError:
        stream = sys.stderr
    return lambda message: print(message, file=stream, flush=True)


class BinaryDistribution(Distribution):
    """The wheel holds compiled files: a platform wheel, not a pure one."""

    def has_ext_modules(self):
        return True


def _data_files():
    sources = sorted(
        path for pattern in SOURCE_PATTERNS for path in (ROOT / "lammps_plugin").glob(pattern)
    )
    by_folder = {}
    for path in sources:
        folder = path.parent.relative_to(ROOT / "lammps_plugin")
        by_folder.setdefault(str(pathlib.Path("share/mlipdrive/lammps_plugin") / folder), []).append(
            str(path.relative_to(ROOT))
        )
    plugin = [str((STAGE_DIR / name).relative_to(ROOT)) for name in plugin_build.PLUGIN_FILES]
    return [(PLUGIN_FOLDER, plugin)] + sorted(by_folder.items())


build.sub_commands.insert(0, ("build_lammps_plugin", None))
setup(
    cmdclass={"build_lammps_plugin": BuildLammpsPlugin},
    distclass=BinaryDistribution,
    data_files=_data_files(),
)
