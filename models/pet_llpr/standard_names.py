"""Re-export metatrain's LLPR model with metatomic's names for the variant uncertainties.

metatrain 2026.4.1's LLPR wrapper names the uncertainty of ``energy`` after
metatomic's standard, ``energy_uncertainty``, but that of a variant
``energy/<v>`` ``mtt::aux::energy/<v>_uncertainty`` (``llpr/model.py``,
``_get_uncertainty_name``). metatomic's engines pick the uncertainty of the
variant they run as ``energy_uncertainty/<v>``: ``MetatomicCalculator(...,
variants={"energy": "morse"})`` stops with "variant 'morse' for output
'energy_uncertainty' not found" on metatrain's export.

This script loads the exported model with metatomic alone, wraps its module
(weights and code unchanged) in :class:`StandardOutputNames`, which only
translates output names, and saves it again with the same metadata,
dtype, units, interaction range and neighbour lists. The new model declares
``energy``, ``energy/<v>``, ``energy_uncertainty`` and
``energy_uncertainty/<v>`` only: metatrain's auxiliary outputs (features,
last-layer features, cutoff statistics) are left out.

Usage (runtime venv): python standard_names.py METATRAIN_EXPORT.pt OUT.pt
"""

import argparse
from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelOutput,
    System,
    load_atomistic_model,
)


class StandardOutputNames(torch.nn.Module):
    """Evaluate ``model`` under other output names: ``inner_names`` maps ours to its."""

    def __init__(self, model: torch.nn.Module, inner_names: Dict[str, str]):
        super().__init__()
        self.model = model
        self.inner_names = inner_names

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        requested: Dict[str, ModelOutput] = {}
        for name, output in outputs.items():
            requested[self.inner_names[name]] = output
        results = self.model(systems, requested, selected_atoms)
        renamed: Dict[str, TensorMap] = {}
        for name in outputs.keys():
            renamed[name] = results[self.inner_names[name]]
        return renamed


def standard_outputs(outputs: Dict[str, ModelOutput]) -> Dict[str, str]:
    """Map metatomic's name of every energy and energy-uncertainty output to metatrain's."""
    names = {}
    for name in outputs:
        if name == "energy" or name.startswith("energy/"):
            names[name] = name
            variant = name[len("energy"):]  # "" or "/<v>"
            names["energy_uncertainty" + variant] = (
                "energy_uncertainty" if variant == "" else f"mtt::aux::{name}_uncertainty"
            )
    missing = [inner for inner in names.values() if inner not in outputs]
    if missing:
        raise ValueError(f"the model has no {missing} output(s): is it an LLPR export?")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="the model `mtt export` wrote from the LLPR checkpoint")
    parser.add_argument("output", help="where to save the renamed model")
    args = parser.parse_args()

    exported = load_atomistic_model(args.model)
    old = exported.capabilities()
    names = standard_outputs(old.outputs)
    outputs = {}
    for name, inner in names.items():
        output = old.outputs[inner]
        outputs[name] = ModelOutput(
            unit=output.unit, sample_kind=output.sample_kind, description=output.description
        )
        if name.startswith("energy_uncertainty"):
            energy = "energy" + name[len("energy_uncertainty"):]
            outputs[name].description = f"LLPR uncertainty (standard deviation) of '{energy}'"
    capabilities = ModelCapabilities(
        outputs=outputs,
        atomic_types=old.atomic_types,
        interaction_range=old.interaction_range,
        length_unit=old.length_unit,
        supported_devices=old.supported_devices,
        dtype=old.dtype,
    )
    wrapped = StandardOutputNames(exported.module, names).eval()
    AtomisticModel(wrapped, exported.metadata(), capabilities).save(args.output)
    print(f"{args.output}: outputs {sorted(outputs)}")


if __name__ == "__main__":
    main()
