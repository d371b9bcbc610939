"""grukit: Gated Recurrent Unit networks on PyTorch.

    >>> import grukit as gk
    >>> gru = gk.GRU(input_size=8, hidden_size=16, batch_first=True)

See README.md and the docstrings of :class:`GRU` and :class:`GRUCell`.
"""

from . import architect, callbacks, export, interop, layers, losses, reference
from ._checks import InputDTypeError, InputError
from .engines import engine_info
from .mingru import MinGRU
from .model import Sequential
from .modules import GRU, GRUCell
from .quantize import QuantizedGRU, quantize
from .saving import load
from .seeding import set_seed

__version__ = "0.1.0"

__all__ = ["GRU", "GRUCell", "InputDTypeError", "InputError", "MinGRU",
           "QuantizedGRU", "Sequential", "architect", "callbacks",
           "engine_info", "export", "interop", "layers", "load", "losses", "quantize", "reference",
           "set_seed", "__version__"]
