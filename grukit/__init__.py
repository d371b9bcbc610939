"""grukit: Gated Recurrent Unit networks on PyTorch.

    >>> import grukit as gk
    >>> gru = gk.GRU(input_size=8, hidden_size=16, batch_first=True)

The core sits at the top of the package (reference.py, engines.py, function.py,
modules.py, mingru.py); the rings around it are subpackages that import the core and
never the other way round: training/ (the Keras and Neataptic faces), formats/ (Keras
and ONNX), serving/ (quantisation), app/ (the ``grukit`` command). docs/architecture.md
maps it. See README.md and the docstrings of :class:`GRU` and :class:`GRUCell`.
"""

import sys as _sys

from . import reference
from ._checks import InputDTypeError, InputError
from .engines import engine_info
from .formats import export, interop
from .mingru import MinGRU
from .modules import GRU, GRUCell
from .seeding import set_seed
from .serving.quantize import QuantizedGRU, quantize
from .serving.stream import Stream, stream
from .training import architect, callbacks, initializers, layers, losses, optimizers, regularizers, utils
from .training.layers import Input
from .training.loading import load
from .training.model import Model
from .training.sequential import Sequential

__version__ = "0.1.0"

# The public modules keep their short names: ``import grukit.layers``,
# ``from grukit.callbacks import EarlyStopping`` and ``grukit.interop`` work as before.
for _module in (architect, callbacks, export, initializers, interop, layers, losses, optimizers, regularizers,
                utils):
    _sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module

__all__ = ["GRU", "GRUCell", "Input", "InputDTypeError", "InputError", "MinGRU", "Model",
           "QuantizedGRU", "Sequential", "Stream", "architect", "callbacks",
           "engine_info", "export", "initializers", "interop", "layers", "load", "losses", "optimizers",
           "quantize", "reference", "regularizers", "set_seed", "stream", "utils", "__version__"]
