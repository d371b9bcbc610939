"""grukit: Gated Recurrent Unit networks on PyTorch.

    >>> import grukit as gk
    >>> gru = gk.GRU(input_size=8, hidden_size=16, batch_first=True)

See README.md and the docstrings of :class:`GRU` and :class:`GRUCell`.
"""

from . import interop, reference
from .engines import engine_info
from .modules import GRU, GRUCell

__version__ = "0.1.0"

__all__ = ["GRU", "GRUCell", "engine_info", "interop", "reference", "__version__"]
