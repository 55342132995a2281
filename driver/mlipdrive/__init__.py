"""mlipdrive: run exported metatomic machine-learning potentials in MD engines."""

from .loading import load
from .potential import InvalidInput, Potential, Results
from .settings import InferenceSettings, SETTINGS

__all__ = ["load", "Potential", "Results", "InvalidInput", "InferenceSettings", "SETTINGS"]
__version__ = "0.1.0"
