"""The energy-uncertainty check: models that estimate their own error per atom
(metatomic's ``energy_uncertainty`` output) warn, or stop, where it is large.

metatomic's engines warn when any atom's uncertainty exceeds a threshold (0.1
eV/atom by default); mlipdrive does the same in every engine, with the step (or
evaluation) and the atoms with the largest uncertainty, and ``uncertainty_action
stop`` turns the warning into an error. The LAMMPS plugin formats the same
message (``uncertainty_exceeded`` in :data:`mlipdrive.messages.OUTPUT_MESSAGES`)
with atom IDs and the step.
"""

import warnings
from typing import Optional, Sequence

import numpy as np

from .messages import output_message

#: how many of the atoms above the threshold a message names
WORST_SHOWN = 5


class UncertaintyWarning(UserWarning):
    """The model's energy uncertainty exceeded the threshold on some atoms."""


class UncertaintyExceeded(RuntimeError):
    """The same, with ``uncertainty_action stop``."""


def worst_atoms(uncertainty: np.ndarray, threshold: float, labels: Optional[Sequence] = None):
    """(number of atoms above ``threshold``, 'atom 17 (0.312 eV), ...' for the
    :data:`WORST_SHOWN` largest, equal values by label); ``labels`` name the atoms
    (default: indices; the plugin's labels are atom IDs)."""
    above = np.flatnonzero(uncertainty > threshold)
    labels = np.arange(len(uncertainty)) if labels is None else labels
    order = sorted(above, key=lambda i: (-uncertainty[i], labels[i]))[:WORST_SHOWN]
    worst = ", ".join(f"atom {labels[i]} ({uncertainty[i]:.3g} eV)" for i in order)
    return len(above), worst


def check_uncertainty(
    uncertainty: np.ndarray, threshold: float, action: str, where: str, labels=None
) -> Optional[str]:
    """Warn (:class:`UncertaintyWarning`) or raise (:class:`UncertaintyExceeded`,
    ``action`` 'stop') if an atom's uncertainty (eV) exceeds ``threshold`` (eV);
    returns the message, None if every atom is below."""
    if threshold <= 0 or not (uncertainty > threshold).any():
        return None
    count, worst = worst_atoms(uncertainty, threshold, labels)
    message = output_message(
        "uncertainty_exceeded", threshold=f"{threshold:g}", count=count, where=where, worst=worst
    )
    if action == "stop":
        raise UncertaintyExceeded(message)
    warnings.warn(message, UncertaintyWarning, stacklevel=3)
    return message
