"""TorchScript extensions whose autograd formulas live in Python.

Some extensions register the backward of their operators from their Python
package only (sphericart-torch 2.x, in ``sphericart/torch/register.py``).
Loading the library alone, as metatomic's extensions directory does, leaves
torch to backpropagate through those operators as through constants: the
forces silently lose their part. So :func:`import_extension_packages` imports
the Python package that ships each library of an extensions directory, and
:func:`no_missing_autograd` turns torch's warning about any remaining such
operator into an error. (The LAMMPS plugin, with no Python, has C++ formulas for
the known operators and the same error for the others: lammps_plugin/mlipdrive_autograd.h.)
"""

import contextlib
import importlib
import pathlib
import sys
import warnings
from typing import List

import torch

#: torch's warning when backpropagating through an operator without autograd kernel
MISSING_AUTOGRAD = "an autograd kernel was not registered"


def import_extension_packages(directory) -> List[str]:
    """Import the Python package of every extension library in ``directory``.

    A library ``DIR/a/b/torch-X.Y/lib/libname.so`` (pip's layout, X.Y the running
    torch) or ``DIR/a/b/lib/libname.so`` belongs to package ``a.b`` when
    ``DIR/a/b/__init__.py`` exists. Returns the imported module names.
    """
    directory = pathlib.Path(directory).resolve()
    version = "torch-{}.{}".format(*torch.__version__.split(".")[:2])
    imported = []
    # an import loads the library through torch.ops, and metatomic's
    # AtomisticModel.save records every library there as an extension of the model
    # it saves: forget it again (its operators stay registered)
    loaded = set(torch.ops.loaded_libraries)
    for library in sorted(directory.glob("**/lib/lib*.so")):
        package = library.parent.parent
        if package.name.startswith("torch-"):
            if package.name != version:
                continue
            package = package.parent
        if package == directory or not (package / "__init__.py").is_file():
            continue
        name = ".".join(package.relative_to(directory).parts)
        if name not in imported:
            if str(directory) not in sys.path:
                sys.path.append(str(directory))
            importlib.import_module(name)
            imported.append(name)
    torch.ops.loaded_libraries.intersection_update(loaded)
    return imported


@contextlib.contextmanager
def no_missing_autograd():
    """Raise instead of torch's warning that an operator has no autograd kernel."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        text = str(warning.message)
        if MISSING_AUTOGRAD in text:
            raise RuntimeError(
                f"the model's backward pass went through an operator without an autograd "
                f"formula ({text.split(': ')[0]}), so its forces would be silently wrong; its "
                "TorchScript extension registers the formula from its Python package: give "
                "an extensions directory that holds that package (pip install --target DIR "
                "PACKAGE) or import the package before loading the model"
            )
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
