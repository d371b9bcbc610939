"""Conversions between grukit and Keras 3 GRU weights, both reset conventions.

Keras stores ``kernel`` (I, 3H) and ``recurrent_kernel`` (H, 3H) with gate
columns in the order z, r, h, and ``bias`` (2, 3H) [input; recurrent] for
reset_after=True or (3H,) for reset_after=False. grukit stores PyTorch's
layout: ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), rows r, z, n. Swapping
the first two gate blocks maps one order onto the other, in both directions.

For reset_after=False, Keras has one bias outside every matmul, so grukit's
``bias_ih + bias_hh`` is written to it (exact in exact arithmetic) and the
recurrent bias comes back as zeros.

The layout conversion itself is grukit/training/keras_weights.py (the Keras-style layers'
``get_weights``/``set_weights`` and Keras files use it too); here it meets live Keras layers.
Torch conversions live on the modules: ``gk.GRU.from_torch`` / ``.to_torch``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _checks
from ..modules import GRU
from ..training import keras_weights


def _fn_name(fn: Any) -> str:
    return getattr(fn, "__name__", str(fn))


def from_keras(layer: Any, engine: str = "auto") -> GRU:
    """A batch_first ``gk.GRU`` computing the same function as a built Keras 3 GRU.

    The layer's dropout settings act only in Keras training; at inference the
    two compute the same outputs and states.
    """
    for attr in ("units", "reset_after", "get_weights", "go_backwards"):
        if not hasattr(layer, attr):
            raise TypeError(f"layer must be a keras.layers.GRU, got {_checks.describe(layer)}")
    if not layer.built:
        raise ValueError("layer must be built before conversion (call it on data or "
                         "layer.build(input_shape)); got an unbuilt layer")
    if layer.go_backwards:
        raise ValueError("layer must have go_backwards=False; got go_backwards=True "
                         "(reverse the input in time instead)")
    for name, want in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        got = _fn_name(getattr(layer, name))
        if got != want:
            raise ValueError(f"layer.{name} must be {want!r} for a GRU, got {got!r}")
    weights = [np.asarray(w) for w in layer.get_weights()]
    gru = GRU(weights[0].shape[0], int(layer.units), bias=bool(layer.use_bias), batch_first=True,
              reset_after=bool(layer.reset_after), engine=engine, dtype=torch.from_numpy(weights[0]).dtype)
    keras_weights.gru_from_keras(gru, "", weights, "layer")
    return gru


def to_keras(gru: GRU) -> list[np.ndarray]:
    """The weights list for ``keras.layers.GRU(H, reset_after=gru.reset_after,
    use_bias=gru.bias).set_weights``: [kernel, recurrent_kernel(, bias)]."""
    if not isinstance(gru, GRU):
        raise TypeError(f"gru must be a grukit.GRU, got {_checks.describe(gru)}")
    if gru.num_layers != 1 or gru.bidirectional:
        raise ValueError(
            "gru must have num_layers=1 and bidirectional=False (a Keras GRU layer is one "
            f"layer, one direction), got num_layers={gru.num_layers}, "
            f"bidirectional={gru.bidirectional}"
        )
    return keras_weights.gru_to_keras(gru, "")


from .keras_files import load_keras, save_keras  # noqa: E402  (re-exported: gk.interop's file functions)

__all__ = ["from_keras", "to_keras", "load_keras", "save_keras"]
