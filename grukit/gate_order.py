"""The order of the three gate blocks in each format's weights.

grukit and torch store the rows of ``weight_ih``/``weight_hh`` and the biases in the
gate order r, z, n (reset, update, new). Keras stores its ``kernel``/``recurrent_kernel``
columns and ``bias`` in the order z, r, h, and ONNX's GRU operator its W, R and B rows
in the order z, r, h too. The two orders differ by swapping the first two blocks, so
one function converts both ways (it is its own inverse).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def swap_zr(a: Array, axis: int = 0) -> Array:
    """Gate blocks r, z, n <-> z, r, n along ``axis`` of a NumPy array or a tensor."""
    if isinstance(a, torch.Tensor):
        first, second, third = a.chunk(3, dim=axis)
        return torch.cat([second, first, third], dim=axis)
    first, second, third = np.split(a, 3, axis=axis)
    return np.concatenate([second, first, third], axis=axis)
