"""Save the GAP model that `mtt train` exported again, with metadata.yaml.

metatrain's GAP writes no checkpoint (its trainer has nothing to restart), and
`mtt export` of an already exported `.pt` keeps the model's metadata as it is:
so the family's name and description (metadata.yaml) are added here, the way
`mtt export -m` does for a checkpoint. Runs in the metatrain venv, where
`featomic.torch` is importable: its libraries are then the model's extensions,
collected into EXTENSIONS_DIR as `mtt` does.

Usage: python add_metadata.py MODEL.pt METADATA.yaml OUT.pt EXTENSIONS_DIR
"""

import sys

import featomic.torch  # noqa: F401  (loads the extension the model calls)
import yaml
from metatomic.torch import AtomisticModel, ModelMetadata, load_atomistic_model

if __name__ == "__main__":
    source, metadata_file, output, extensions = sys.argv[1:5]
    model = load_atomistic_model(source)
    with open(metadata_file) as file:
        metadata = ModelMetadata(**yaml.safe_load(file))
    wrapped = AtomisticModel(model.module, metadata, model.capabilities())
    wrapped.save(output, collect_extensions=extensions)
    print(f"{output}: metadata of {metadata_file} added")
