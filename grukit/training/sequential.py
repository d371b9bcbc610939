"""``gk.Sequential``: a Keras Model (training/model.py) of a stack of layers, each reading
the last one's output, built on its first call or from a leading ``layers.Input``."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from .. import _checks
from . import layers as L
from .model import _ONE_BATCH, MODEL_FILES, OPTIMIZERS, WEIGHTS_FILES, Model, layer_configs

__all__ = ["Sequential", "MODEL_FILES", "OPTIMIZERS", "WEIGHTS_FILES", "_ONE_BATCH"]


class Sequential(Model):
    """A stack of grukit layers with Keras' training API.

    Example::

        >>> import numpy as np, grukit as gk
        >>> from grukit import layers
        >>> model = gk.Sequential([layers.GRU(8), layers.Dense(1)])
        >>> model.compile(optimizer="adam", loss="mse")
        >>> x, y = np.random.rand(16, 5, 3), np.random.rand(16, 1)
        >>> history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        >>> sorted(history.history)
        ['loss']
        >>> model.predict(x).shape
        (16, 1)
    """


    _functional = False

    def __init__(self, layers: Optional[Sequence[L.Layer]] = None, device: Any = "auto",
                 name: Optional[str] = None) -> None:
        super().__init__(device=device, name=name)
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: L.Layer) -> None:
        if not isinstance(layer, L.Layer):
            raise TypeError(f"layers must be grukit.layers layers, got {_checks.describe(layer)}")
        if isinstance(layer, L.Input) and len(self.layers):
            raise ValueError("layers.Input must come first")
        if not len(self.layers) and not isinstance(layer, L.Input) and layer.input_shape is not None:
            self.add(L.Input(layer.input_shape))  # Keras' input_shape= on the first layer declares the input
        self.layers.append(layer)
        first = self.layers[0]
        if isinstance(first, L.Input):  # declared input: build as layers arrive, as Keras does
            steps = self.build_steps(first.shape[0] if first.shape else None)
            shape = [steps, *(1 if s is None else s for s in first.shape[1:])]
            dtype = torch.long if first.dtype.startswith("int") else torch.float32
            self.input_spec = None
            self.build_from(torch.zeros((1, *shape), dtype=dtype))

    def build_steps(self, declared: Optional[int]) -> int:
        """How many time steps a build pass on zeros takes: the declared length where weights
        depend on it (a Flatten before a Dense), else the fewest steps the convolutions and
        poolings need (one for recurrent layers: no weight of theirs depends on T)."""
        fewest = 1
        for layer in reversed(self.layers):  # the steps each layer needs for one output step
            if isinstance(layer, L.Conv1D):
                span = (layer.kernel_size - 1) * layer.dilation_rate + 1 if layer.padding == "valid" else 1
                fewest = (fewest - 1) * layer.strides + span
            elif isinstance(layer, L.MaxPooling1D):
                fewest = (fewest - 1) * layer.strides + (layer.pool_size if layer.padding == "valid" else 1)
        flat = any(isinstance(layer, L.Flatten) for layer in self.layers)
        return declared if declared is not None and flat else fewest

    # ------------------------------------------------------------------ calling

    def _takes_ids(self) -> bool:
        """Whether the first layer reads token ids (an Embedding); others read float features."""
        return isinstance(next((la for la in self.layers if not isinstance(la, L.Input)), None), L.Embedding)


    def forward(self, x: Tensor, mask: Optional[Tensor] = None, return_mask: bool = False) -> Any:
        """The model's output for x; with ``return_mask``, (output, its mask): the mask of a
        per-step output ((B, T) bool, from Embedding(mask_zero) or Masking), which fit and
        evaluate apply to the loss and metrics as Keras does, or None. A NumPy array (or a
        list) is taken as a tensor on the model's device, as a Keras model called on one."""
        x = self._as_input(x)
        if not x.dtype.is_floating_point and not self._takes_ids():
            x = x.float()  # integer features (0/1 flags, counts) are numbers to a GRU, as in Keras
            if self.compute_dtype is not None:
                x = x.to(self.compute_dtype)
        for layer in self.layers:
            x, mask = layer(x, mask)
        x = self._as_output(x)
        return (x, mask) if return_mask else x

    def pop(self) -> L.Layer:
        """Keras' ``pop()``: remove and return the last layer."""
        if not len(self.layers):
            raise ValueError("pop needs a layer to remove: the model has none")
        layer = self.layers[-1]
        del self.layers[-1]
        return layer

    # ----------------------------------------------------------------- saving

    def get_config(self) -> dict[str, Any]:
        return {"layers": layer_configs(self.layers),
                "input_spec": None if self.input_spec is None else
                {"shape": self.input_spec[0], "dtype": self.input_spec[1]}}

    def _output_shapes(self) -> list[str]:
        """Each layer's output shape as Keras' summary shows it ((None, ...): None for the batch,
        and for a time axis the declared input leaves free), from one call on zeros; blanks
        before the model is built or while a stateful layer holds state the call would disturb."""
        blank = [""] * len(self.layers)
        if self.input_spec is None or any(getattr(getattr(la, "layer", la), "stateful", False)
                                          for la in self.layers):  # a Bidirectional's too
            return blank
        shape, dtype = self.input_spec
        first = self.layers[0]
        free_time = False  # whether the output's axis 1 is a time axis the declared input leaves free
        if isinstance(first, L.Input):  # the declared shape, a free time axis probed with the fewest steps
            shape = [1 if d is None else d for d in first.shape]
            if first.shape and first.shape[0] is None:
                shape[0] = self.build_steps(None)
            free_time = bool(first.shape) and first.shape[0] is None
        x = torch.zeros((1, *shape), dtype=torch.long if dtype == "int64" else torch.float32,
                        device=self.device)
        shapes, mask = [], None
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                for layer in self.layers:
                    x, mask = layer(x, mask)
                    out = x[0] if isinstance(x, (tuple, list)) else x
                    inner = getattr(layer, "layer", layer)  # Bidirectional, TimeDistributed
                    if (isinstance(layer, (L.GlobalAveragePooling1D, L.GlobalMaxPooling1D, L.RepeatVector))
                            or (isinstance(inner, (L.GRU, L.MinGRU, L.RNN)) and not inner.return_sequences)):
                        free_time = False  # the time axis is gone (or, from RepeatVector, fixed)
                    dims = ["None", *(str(d) for d in out.shape[1:])]
                    if free_time and out.dim() >= 2:
                        dims[1] = "None"
                    shapes.append(f"({', '.join(dims)})")
        except (RuntimeError, ValueError):
            return blank
        finally:
            self.train(was)
        return shapes

    def summary(self) -> str:
        """Keras' summary: each layer (its name and kind), its output shape and its number of
        weights, and the total; printed and returned."""
        shapes = self._output_shapes()
        width = max([16, *(len(s) + 2 for s in shapes)])
        lines = [f"{'layer':<28}{'output':<{width}}{'params':>10}"]
        for layer, shape in zip(self.layers, shapes, strict=True):
            n = L.count_params(layer)
            kind = type(layer).__name__
            lines.append(f"{f'{layer.name} ({kind})' if layer.name else kind:<28}{shape:<{width}}{n:>10,}")
        total, frozen = L.count_params(self), L.count_params(self, trainable=False)
        lines.append(f"total params: {total:,}")
        lines.append(f"trainable params: {total - frozen:,}")
        lines.append(f"non-trainable params: {frozen:,}")
        text = "\n".join(lines)
        print(text)
        return text
