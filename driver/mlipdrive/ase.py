"""``MLIPCalculator``: an ASE calculator over :class:`mlipdrive.Potential`."""

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from .loading import load
from .potential import Potential


class MLIPCalculator(Calculator):
    """Energy, forces, stress and per-atom energies from a metatomic model.

    :param model: path of an exported model, or a loaded :class:`Potential`
        (which must use the 'metal'/'ase' unit system: Å and eV)
    :param settings, device, extensions: as in :func:`mlipdrive.load`; the
        settings also choose the outputs, as ``MetatomicCalculator``'s arguments
        do: ``{"variant": "pbe"}`` (``variants={"energy": "pbe"}``),
        ``{"non_conservative": True}`` (or ``"forces"``, ``"stress"``: only that
        one from the model's head), ``{"uncertainty_threshold": 0.2}`` (0 or
        'off' for ``None``), ``{"uncertainty_action": "stop"}``, ``{"scale": 0.5}``

    Where the model has a per-atom ``energy_uncertainty`` and the check is on,
    ``results["energy_uncertainty"]`` holds it (eV per atom) after every
    calculation, and an :class:`mlipdrive.uncertainty.UncertaintyWarning` names
    the atoms above the threshold.
    """

    implemented_properties = [
        "energy", "free_energy", "energies", "forces", "stress", "energy_uncertainty",
    ]

    def __init__(self, model, *, settings="default", device="cpu", extensions=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, Potential):
            if model.units.length != "angstrom" or model.units.energy != "eV":
                raise ValueError(
                    f"ASE works in Å and eV, but this potential uses {model.units}; "
                    "load it with units='metal'"
                )
            self.potential = model
        else:
            self.potential = load(
                model, settings=settings, device=device, extensions=extensions
            )

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        periodic = bool(self.atoms.pbc.all())
        results = self.potential.compute(
            self.atoms.positions,
            self.atoms.numbers,
            self.atoms.cell.array,
            self.atoms.pbc,
            forces=True,
            # the backward pass is shared: the stress costs almost nothing more
            stress=periodic,
            per_atom="energies" in properties,
        )
        self.results["energy"] = results.energy
        self.results["free_energy"] = results.energy
        self.results["forces"] = results.forces
        if results.energies is not None:
            self.results["energies"] = results.energies
        if results.energy_uncertainty is not None:
            self.results["energy_uncertainty"] = results.energy_uncertainty
        if results.stress is not None:
            self.results["stress"] = full_3x3_to_voigt_6_stress(results.stress)
        elif "stress" in properties:
            raise ValueError(
                "stress needs a cell periodic in all three directions"
                + (" and, with non_conservative, a model with a non_conservative_stress "
                   "output" if self.potential.settings.stress_from_head else "")
            )
