"""Keras-style layers over grukit's modules: the input size comes from the first call.

Each layer maps ``(x, mask) -> (y, mask)``: a mask from ``Embedding(mask_zero=True)``
(or given to the model) travels with the data, and a GRU turns it into per-row
lengths for its engine. Layers are ``torch.nn.Module``s; ``get_config`` gives what
``gk.load`` needs to build them again.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks
from ..mingru import MinGRU as _MinGRUModule
from ..modules import GRU as _GRUModule
from . import initializers as inits
from . import keras_weights
from . import regularizers as regs

Mask = Optional[Tensor]  # (B, T) bool, True where a time step is real


def _copy_into(params: list, values: list, where: str, kind: str, shown: Optional[list] = None) -> None:
    """Copy arrays into parameters of the same shapes, or a ValueError naming both."""
    values = [np.asarray(v) for v in values]  # copy_ casts to the parameters' dtype
    if [tuple(p.shape) for p in params] != [v.shape for v in values]:
        raise ValueError(f"{where}: variables of shapes {shown or [v.shape for v in values]} do not fit "
                         f"{kind} parameters {[tuple(p.shape) for p in params]}")
    with torch.no_grad():
        for p, v in zip(params, values, strict=True):
            p.copy_(torch.from_numpy(np.ascontiguousarray(v)).reshape(p.shape))  # a scalar too (0-d)


def count_params(module: nn.Module, trainable: Optional[bool] = None) -> int:
    """The weights of a layer or model as Keras counts them (a reset_after=False GRU's zero
    recurrent bias is not one of them): all, or those that fit trains (``trainable=True``) or
    leaves alone (False)."""
    fixed = {id(p) for m in module.modules() if isinstance(m, Layer) for p in m.fixed_parameters()}
    return sum(p.numel() for p in module.parameters() if id(p) not in fixed
               and (trainable is None or p.requires_grad == trainable))


def keras_variable_groups(module: nn.Module) -> list[list[nn.Parameter]]:
    """The parameters grouped as Keras' weights: a GRU layer's bias_ih and bias_hh (of each
    direction) are Keras' one (2, 3H) bias with reset_after; every other parameter is a weight
    of its own."""
    paired: dict[int, list[nn.Parameter]] = {}
    for layer in module.modules():
        if isinstance(layer, GRU) and layer.reset_after and layer.use_bias and hasattr(layer, "gru"):
            named = dict(layer.gru.named_parameters())
            for name, p in named.items():
                if name.startswith("bias_ih"):
                    pair = [p, named[name.replace("bias_ih", "bias_hh")]]
                    paired[id(pair[0])] = paired[id(pair[1])] = pair
    groups, seen = [], set()
    for p in module.parameters():
        group = paired.get(id(p), [p])
        if id(group[0]) not in seen:
            seen.add(id(group[0]))
            groups.append(group)
    return groups


# How a layer called on a graph's tensor makes its node: functional.call, registered by
# training/functional.py, which builds on this module (and is imported with grukit)
FUNCTIONAL_CALL: list[Any] = []


def _symbolic(value: Any) -> bool:
    """Whether a layer's argument stands for a graph's tensor (functional.KerasTensor, layers.Input)."""
    if isinstance(value, (list, tuple)):
        return any(getattr(v, "_keras_symbolic", False) for v in value)
    return getattr(value, "_keras_symbolic", False)


def split_weights(weights: Any, counts: list[int]) -> list[list[Any]]:
    """A flat list of weights cut into consecutive parts of ``counts`` arrays."""
    starts = [sum(counts[:i]) for i in range(len(counts))]
    return [list(weights[a:a + n]) for a, n in zip(starts, counts, strict=True)]


class Layer(nn.Module):
    """A Keras-style layer. Subclasses define ``build(input_shape)`` and ``call``.

    Every layer also takes Keras' common keywords: ``name`` (shown by ``summary()``),
    ``input_shape`` (one sample's shape: on a Sequential model's first layer it declares
    the input, as ``Input(input_shape)`` before it would; Keras 2 tutorials write it so) and
    ``dtype="float32"`` (the only one; ``gk.quantize`` makes bfloat16 models) and
    ``trainable`` (False: fit leaves its weights as they are, as Keras' frozen layers; settable
    later, ``layer.trainable = False``). Any other keyword is a TypeError that names it."""

    def __init__(self, name: Optional[str] = None, input_shape: Optional[tuple] = None,
                 dtype: Optional[str] = None, trainable: bool = True, **unknown: Any) -> None:
        super().__init__()
        self._trainable = _checks.boolean("trainable", trainable)
        self.initializers: dict[str, Any] = {}  # Keras' initializers and regularizers by the weight they
        self.regularizers: dict[str, Any] = {}  # act on: "kernel", "recurrent", "bias", "embeddings"
        if unknown:
            k = sorted(unknown)[0]
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {k!r} (grukit's "
                            "layers take their own arguments and Keras' name, input_shape and dtype)")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {_checks.describe(name)}")
        if input_shape is not None and (not isinstance(input_shape, (tuple, list)) or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
                for d in input_shape)):
            raise TypeError(f"input_shape must be a tuple of positive ints or None (one sample's shape, "
                            f"without the batch), got {input_shape!r}")
        if dtype not in (None, "float32"):
            raise ValueError(f"dtype must be 'float32' (grukit's layers compute in float32; "
                             f"gk.quantize(model, torch.bfloat16) makes a bfloat16 model), got {dtype!r}")
        self.name = name
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.built = False

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``layer(x, mask)`` on tensors: (output, mask), the layer's forward. ``layer(x)`` on a
        layers.Input or another layer's output in a graph (Keras' functional API): the
        output(s) as KerasTensors (training/functional.py), for gk.Model(inputs, outputs)."""
        if (args and _symbolic(args[0])) or _symbolic(kwargs.get("initial_state")) or (
                not args and _symbolic(kwargs.get("x", kwargs.get("inputs")))):
            if not args:
                args = (kwargs.pop("x") if "x" in kwargs else kwargs.pop("inputs"),)
            return FUNCTIONAL_CALL[0](self, *args, **kwargs)
        return super().__call__(*args, **kwargs)

    # Keras' initializers and regularizers: ``kernel_initializer``, ``recurrent_regularizer`` ...

    def _weight_options(self, initializer: dict[str, Any], regularizer: dict[str, Any]) -> None:
        self.initializers = {k: inits.get(f"{k}_initializer", v) for k, v in initializer.items()
                             if v is not None}
        self.regularizers = {k: regs.get(f"{k}_regularizer", v) for k, v in regularizer.items()
                             if v is not None}

    def keras_tensors(self) -> list[list[tuple[str, Tensor]]]:
        """The weights in Keras' layout, on the parameters' graph: per direction (one list for
        most layers), (key, tensor) pairs in keras_variables()' order."""
        return []

    @property
    def losses(self) -> list[Tensor]:
        """Keras' ``layer.losses``: the penalties of its weight regularizers (and of the layers
        inside it), which fit and evaluate add to the loss."""
        return [regs.penalty(reg, tensor, f"{key}_regularizer")
                for layer in self.modules() if isinstance(layer, Layer) and layer.regularizers
                for group in layer.keras_tensors() for key, tensor in group
                for reg in [layer.regularizers.get(key)] if reg is not None]

    def _initialize(self) -> None:
        """Draw the weights that have an initializer (Keras' shapes, one draw per direction) and
        set them, the others as they are, through _set_keras_group."""
        for direction, group in enumerate(self.keras_tensors() if self.initializers else []):
            if any(key in self.initializers for key, _ in group):
                with torch.no_grad():
                    arrays = [inits.make(self.initializers[key], tuple(t.shape), f"{key}_initializer")
                              if key in self.initializers else t.detach().cpu().numpy() for key, t in group]
                self._set_keras_group(direction, arrays, f"{self.name or type(self).__name__} initializers")

    def _set_keras_group(self, direction: int, arrays: list[np.ndarray], where: str) -> None:
        """Set one direction's weights from Keras-layout arrays (one group: set_keras_variables')."""
        self.set_keras_variables({"vars": arrays}, where)

    def _options_config(self) -> dict[str, Any]:
        """The regularizers as get_config() saves them (initializers matter only until the
        first build, and the saved weights hold what they drew)."""
        return {f"{k}_regularizer": regs.serialize(v) for k, v in self.regularizers.items()}

    def forward(self, x: Tensor, mask: Mask = None, **kwargs: Any) -> tuple[Any, Mask]:
        if not self.built:
            self.build(tuple(x.shape) if isinstance(x, Tensor) else [tuple(t.shape) for t in x])
            self.built = True
            self.trainable = self._trainable  # the weights made by build follow it
        return self.call(x, mask, **kwargs)

    @property
    def trainable(self) -> bool:
        """Keras' ``trainable``: whether fit updates this layer's weights."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = _checks.boolean("trainable", value)
        fixed = {id(p) for m in self.modules() if isinstance(m, Layer) for p in m.fixed_parameters()}
        for p in self.parameters():
            if id(p) not in fixed:  # a reset_after=False GRU's zero bias stays frozen
                p.requires_grad_(self._trainable)

    def fixed_parameters(self) -> list[nn.Parameter]:
        """Parameters that are not Keras weights and stay as they are (none, but in a GRU
        without reset_after: torch's second bias, kept at zero)."""
        return []

    def get_config(self) -> dict[str, Any]:
        return {}

    # Keras' weights: NumPy arrays in Keras' layout (keras_weights.py), keyed by their path in
    # a Keras weights file (formats/keras_files.py reads and writes them so)

    def keras_variables(self) -> dict[str, list[np.ndarray]]:
        """{path below layers/<name> in a Keras weights file: [arrays]}; empty without weights.
        A layer of one group of weights keeps them under "vars", as keras_tensors() gives them."""
        groups = self.keras_tensors()
        if not groups:
            return {}
        with torch.no_grad():
            return {"vars": [t.detach().cpu().numpy().copy() for _, t in groups[0]]}

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        """Set the weights from keras_variables()-shaped arrays."""

    def get_weights(self) -> list[np.ndarray]:
        """Keras' ``get_weights()``: the layer's weights as NumPy arrays in Keras' layout (a GRU's
        kernel, recurrent_kernel and bias, gate blocks z, r, h), so that a Keras layer's
        ``set_weights`` takes them and back."""
        self._require_built("get_weights")
        return [a for arrays in self.keras_variables().values() for a in arrays]

    def set_weights(self, weights: Any) -> None:
        """Keras' ``set_weights(weights)``: as many arrays as get_weights() gives, of its shapes
        (a Keras layer's get_weights() fits)."""
        self._require_built("set_weights")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays, got {_checks.describe(weights)}")
        current = self.keras_variables()
        counts = [len(v) for v in current.values()]
        if len(weights) != sum(counts):
            raise ValueError(f"weights must hold {sum(counts)} arrays of shapes "
                             f"{[a.shape for v in current.values() for a in v]} for this "
                             f"{type(self).__name__}, got {len(weights)}")
        self.set_keras_variables(dict(zip(current, split_weights(weights, counts), strict=True)),
                                 f"{type(self).__name__}.set_weights")

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(f"{what} needs a built layer: its weights are made on the first call "
                             "(or when a Sequential model starts with layers.Input / input_shape)")

    @property
    def output(self) -> Any:
        """Keras' ``layer.output``: in a functional graph, what this layer's one call gave (a
        KerasTensor, or a list of them), e.g. for ``gk.Model(inputs, layer.output)``, a model of
        the features it computes."""
        tensors = self._only_node("output").tensors
        return tensors[0] if len(tensors) == 1 else list(tensors)

    @property
    def input(self) -> Any:
        """Keras' ``layer.input``: in a functional graph, what this layer's one call read."""
        return self._only_node("input").x

    def _only_node(self, what: str) -> Any:
        nodes = self.__dict__.get("_keras_nodes", [])
        if not nodes:  # never called on a graph's tensors: no such attribute (hasattr is False)
            raise AttributeError(f"{type(self).__name__}.{what}: the layer has not been called in a "
                                 "functional graph")
        if len(nodes) != 1:
            raise ValueError(f"{type(self).__name__}.{what} is the {what} of the layer's one call in a "
                             f"functional graph; it has been called on symbolic tensors {len(nodes)} times")
        return nodes[0]

    def reset_states(self) -> None:
        """Forget carried state (stateful layers)."""

    def reset_state(self) -> None:
        """Keras 3's name for reset_states."""
        self.reset_states()


class Input(Layer):
    """Declares the shape of one sample, ``shape=(T, F)`` or ``(T,)`` for token ids, so
    that a Sequential model is built when it is made: ``layers.Input((None, 8))``. In
    Keras' functional API it stands for the data: layers called on it make the graph that
    ``gk.Model(inputs, outputs)`` runs (training/functional.py).
    ``batch_size`` fixes the batch, as Keras' does: stateful layers then start from
    zeros of that many rows and refuse another batch size until reset_states()."""

    _keras_symbolic = True  # calling a layer on it makes a functional graph (training/functional.py)

    def __init__(self, shape: tuple, dtype: str = "float32", batch_size: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        super().__init__(name=name)
        if not isinstance(shape, (tuple, list)) or not all(
                s is None or (isinstance(s, int) and s > 0) for s in shape):
            raise TypeError(f"shape must be a tuple of positive ints or None, got {shape!r}")
        self.shape, self.dtype = tuple(shape), dtype
        self.batch_size = None if batch_size is None else _checks.positive_int("batch_size", batch_size)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        return x, mask

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.batch_size is not None:
            config["batch_size"] = self.batch_size
        return config


class Embedding(Layer):
    """Token ids (B, T) -> vectors (B, T, output_dim); id 0 is padding when mask_zero."""

    def __init__(self, input_dim: int, output_dim: int, mask_zero: bool = False,
                 embeddings_initializer: Any = None, embeddings_regularizer: Any = None,
                 weights: Any = None, input_length: Optional[int] = None, **keras: Any) -> None:
        if input_length is not None:  # Keras 2's; Keras 3 drops it with this warning
            warnings.warn("Embedding's input_length is deprecated (Keras 3 ignores it too): just remove it",
                          DeprecationWarning, stacklevel=2)
        super().__init__(**keras)
        self.input_dim = _checks.positive_int("input_dim", input_dim)
        self.output_dim = _checks.positive_int("output_dim", output_dim)
        self.mask_zero = _checks.boolean("mask_zero", mask_zero)
        self._weight_options({"embeddings": embeddings_initializer}, {"embeddings": embeddings_regularizer})
        self.embedding = nn.Embedding(self.input_dim, self.output_dim)
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)  # Keras' default initialiser
        self._initialize()
        if weights is not None:  # Keras' pretrained vectors: weights=[matrix] (or the matrix)
            matrix = weights[0] if isinstance(weights, (list, tuple)) and len(weights) == 1 else weights
            _copy_into([self.embedding.weight], [matrix], "weights", "Embedding")
        self.built = True
        self.trainable = self._trainable

    def keras_tensors(self) -> list[list[tuple[str, Tensor]]]:
        return [[("embeddings", self.embedding.weight)]]

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dtype.is_floating_point:
            if not torch.equal(x, x.round()):
                raise TypeError("Embedding input must hold integer token ids, got fractional values")
            x = x.long()
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.input_dim):
            raise ValueError(f"Embedding input ids must lie in [0, {self.input_dim}) (input_dim), got "
                             f"[{int(x.min())}, {int(x.max())}]")
        if self.mask_zero:
            mask = x != 0 if mask is None else mask & (x != 0)
        return self.embedding(x), mask

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        _copy_into(list(self.parameters()), variables["vars"], where, type(self).__name__)

    def get_config(self) -> dict[str, Any]:
        return {"input_dim": self.input_dim, "output_dim": self.output_dim, "mask_zero": self.mask_zero,
                **self._options_config()}


class Masking(Layer):
    """Marks time steps whose features all equal ``mask_value`` as padding (Keras' Masking):
    the GRUs after it skip them."""

    def __init__(self, mask_value: float = 0.0, **keras: Any) -> None:
        super().__init__(**keras)
        if isinstance(mask_value, bool) or not isinstance(mask_value, (int, float)):
            raise TypeError(f"mask_value must be a number, got {_checks.describe(mask_value)}")
        self.mask_value = float(mask_value)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 3:
            raise ValueError(f"Masking input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        keep = (x != self.mask_value).any(-1)
        return x * keep[..., None], (keep if mask is None else mask & keep)

    def get_config(self) -> dict[str, Any]:
        return {"mask_value": self.mask_value}


ACTIVATIONS = {
    None: lambda x: x, "linear": lambda x: x, "relu": F.relu, "sigmoid": torch.sigmoid,
    "tanh": torch.tanh, "softmax": functools.partial(F.softmax, dim=-1), "gelu": F.gelu,
    "elu": F.elu, "softplus": F.softplus, "selu": F.selu,
}


def _activation(name: Optional[str]) -> Optional[str]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(str(a) for a in ACTIVATIONS)}, got {name!r}")
    return name


class Dense(Layer):
    """y = activation(x W^T + b) on the last axis; Keras' glorot-uniform initialisation."""

    def __init__(self, units: int, activation: Optional[str] = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = None, kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, **keras: Any) -> None:
        super().__init__(**keras)
        self.units = _checks.positive_int("units", units)
        self.activation, self.use_bias = _activation(activation), _checks.boolean("use_bias", use_bias)
        self._weight_options({"kernel": kernel_initializer, "bias": bias_initializer},
                             {"kernel": kernel_regularizer, "bias": bias_regularizer})

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.linear = nn.Linear(input_shape[-1], self.units, bias=self.use_bias)
        nn.init.xavier_uniform_(self.linear.weight)  # Keras' defaults: glorot_uniform, zeros
        if self.use_bias:
            nn.init.zeros_(self.linear.bias)
        self._initialize()
        self.built = True

    def keras_tensors(self) -> list[list[tuple[str, Tensor]]]:
        lin = self.linear
        return [[("kernel", lin.weight.T)] + ([("bias", lin.bias)] if lin.bias is not None else [])]

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        return ACTIVATIONS[self.activation](self.linear(x)), mask

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        arrays = [np.asarray(a) for a in variables["vars"]]
        _copy_into(list(self.parameters()), [a.T for a in arrays[:1]] + arrays[1:], where, "Dense",
                   [a.shape for a in arrays])

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                **self._options_config()}


class Dropout(Layer):
    def __init__(self, rate: float, **keras: Any) -> None:
        super().__init__(**keras)
        self.rate = _checks.probability("rate", rate)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        return F.dropout(x, self.rate, self.training), mask

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}


class GlobalAveragePooling1D(Layer):
    """The mean over time of (B, T, F) -> (B, F); with a mask, over each sample's real
    steps only (Keras 3's GlobalAveragePooling1D). The mask stops here."""

    def __init__(self, **keras: Any) -> None:
        super().__init__(**keras)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 3:
            raise ValueError(f"GlobalAveragePooling1D input must be 3-D (batch, time, features), got shape "
                             f"{tuple(x.shape)}")
        if mask is None:
            return x.mean(1), None
        w = mask.to(x.dtype)[..., None]
        return (x * w).sum(1) / w.sum(1).clamp_min(1.0), None


class GlobalMaxPooling1D(Layer):
    """The maximum over time of (B, T, F) -> (B, F). As Keras 3's GlobalMaxPooling1D, it
    takes every step, padding too; the mask stops here."""

    def __init__(self, **keras: Any) -> None:
        super().__init__(**keras)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 3:
            raise ValueError(f"GlobalMaxPooling1D input must be 3-D (batch, time, features), got shape "
                             f"{tuple(x.shape)}")
        return x.amax(1), None


def _drops_mask(layer: Layer, mask: Mask) -> None:
    """Keras' warning when a mask reaches a layer that does not carry masks on."""
    if mask is not None and not getattr(layer, "_warned_mask", False):
        layer._warned_mask = True
        warnings.warn(f"Layer {layer.name or type(layer).__name__!r} was passed an input with a mask; it "
                      "does not support masking and drops it (the layers after it see every step), as in "
                      "Keras", stacklevel=3)


class Flatten(Layer):
    """(B, ...) -> (B, product of the rest): Keras' Flatten, as the dense baselines of the
    forecasting tutorials read a window of steps. A mask stops here (with Keras' warning)."""

    def __init__(self, **keras: Any) -> None:
        super().__init__(**keras)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        _drops_mask(self, mask)
        return x.reshape(x.shape[0], -1), None


class Activation(Layer):
    """Keras' Activation: one of Dense's activations on its own; the mask is passed on."""

    def __init__(self, activation: Optional[str], **keras: Any) -> None:
        super().__init__(**keras)
        self.activation = _activation(activation)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        return ACTIVATIONS[self.activation](x), mask

    def get_config(self) -> dict[str, Any]:
        return {"activation": self.activation}


def _same_pad(length: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras' (TensorFlow's) "same" padding: ceil(T / stride) outputs, the odd step at the end."""
    span = (window - 1) * dilation + 1
    total = max((math.ceil(length / stride) - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


class Conv1D(Layer):
    """Keras' Conv1D on (B, T, F) (channels last): ``filters`` kernels of ``kernel_size`` steps,
    ``strides``, ``padding`` "valid", "same" or "causal" (zeros before the series only),
    ``dilation_rate``, an activation; Keras' glorot-uniform kernel and zero bias, its
    initializers and regularizers. The convolution-then-GRU models of the tutorials (a
    Conv1D and MaxPooling1D shorten a long series before the GRU). A mask stops here (with
    Keras' warning)."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: str = "valid",
                 dilation_rate: Any = 1, activation: Optional[str] = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = None, kernel_regularizer: Any = None,
                 bias_regularizer: Any = None, **keras: Any) -> None:
        super().__init__(**keras)
        self.filters = _checks.positive_int("filters", filters)
        self.kernel_size = _checks.positive_int("kernel_size", _one(kernel_size))
        self.strides = _checks.positive_int("strides", _one(strides))
        self.dilation_rate = _checks.positive_int("dilation_rate", _one(dilation_rate))
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(f"strides and dilation_rate cannot both be above 1 (as in Keras), got "
                             f"{self.strides} and {self.dilation_rate}")
        self.padding = _checks.choice("padding", padding, ("valid", "same", "causal"))
        self.activation, self.use_bias = _activation(activation), _checks.boolean("use_bias", use_bias)
        self._weight_options({"kernel": kernel_initializer, "bias": bias_initializer},
                             {"kernel": kernel_regularizer, "bias": bias_regularizer})

    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"Conv1D input must be 3-D (batch, time, features), got shape {input_shape}")
        self.conv = nn.Conv1d(input_shape[-1], self.filters, self.kernel_size, stride=self.strides,
                              dilation=self.dilation_rate, bias=self.use_bias)
        nn.init.xavier_uniform_(self.conv.weight)  # Keras' defaults: glorot_uniform over (k, in, out), zeros
        if self.use_bias:
            nn.init.zeros_(self.conv.bias)
        self._initialize()
        self.built = True

    def keras_tensors(self) -> list[list[tuple[str, Tensor]]]:
        conv = self.conv
        bias = [("bias", conv.bias)] if conv.bias is not None else []
        return [[("kernel", conv.weight.permute(2, 1, 0))] + bias]

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 3:
            raise ValueError(f"Conv1D input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        _drops_mask(self, mask)
        h = x.transpose(1, 2)
        if self.padding == "causal":
            h = F.pad(h, ((self.kernel_size - 1) * self.dilation_rate, 0))
        elif self.padding == "same":
            h = F.pad(h, _same_pad(x.shape[1], self.kernel_size, self.strides, self.dilation_rate))
        return ACTIVATIONS[self.activation](self.conv(h).transpose(1, 2)), None

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        arrays = [np.asarray(a) for a in variables["vars"]]
        _copy_into(list(self.conv.parameters()), [arrays[0].transpose(2, 1, 0)] + arrays[1:], where, "Conv1D",
                   [a.shape for a in arrays])

    def get_config(self) -> dict[str, Any]:
        return {"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "dilation_rate": self.dilation_rate, "activation": self.activation,
                "use_bias": self.use_bias, **self._options_config()}


def _one(value: Any) -> Any:
    """Keras' 1-D sizes may come as an int or a one-element tuple (kernel_size=(5,))."""
    return value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value


class MaxPooling1D(Layer):
    """Keras' MaxPooling1D on (B, T, F): the maximum of each ``pool_size`` steps, every
    ``strides`` steps (default pool_size), ``padding`` "valid" or "same" (ceil(T / strides)
    outputs). A mask stops here (with Keras' warning)."""

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid", **keras: Any) -> None:
        super().__init__(**keras)
        self.pool_size = _checks.positive_int("pool_size", _one(pool_size))
        self.strides = self.pool_size if strides is None else _checks.positive_int("strides", _one(strides))
        self.padding = _checks.choice("padding", padding, ("valid", "same"))
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 3:
            raise ValueError(f"MaxPooling1D input must be 3-D (batch, time, features), got shape "
                             f"{tuple(x.shape)}")
        _drops_mask(self, mask)
        h = x.transpose(1, 2)
        if self.padding == "same":
            h = F.pad(h, _same_pad(x.shape[1], self.pool_size, self.strides), value=float("-inf"))
        return F.max_pool1d(h, self.pool_size, self.strides).transpose(1, 2), None

    def get_config(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}


class RepeatVector(Layer):
    """(B, F) -> (B, n, F): the input repeated n times along a new time axis (Keras'
    RepeatVector), as a sequence autoencoder's decoder reads its code at every step."""

    def __init__(self, n: int, **keras: Any) -> None:
        super().__init__(**keras)
        self.n = _checks.positive_int("n", n)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 2:
            raise ValueError(f"RepeatVector input must be 2-D (batch, features), got shape {tuple(x.shape)}")
        return x[:, None, :].expand(-1, self.n, -1), None

    def get_config(self) -> dict[str, Any]:
        return {"n": self.n}


class TimeDistributed(Layer):
    """Keras' TimeDistributed: ``layer`` (a Dense or Dropout) applied at every time step of a
    (B, T, F) input, the mask passed on. grukit's Dense already acts on the last axis, so
    this is that layer on the sequence; it is here so that Keras code runs as written."""

    def __init__(self, layer: Layer, **keras: Any) -> None:
        super().__init__(**keras)
        if not isinstance(layer, (Dense, Dropout)):
            raise TypeError(f"layer must be a grukit.layers.Dense or Dropout (a per-step layer), got "
                            f"{_checks.describe(layer)}")
        self.layer = layer
        self.built = layer.built

    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"TimeDistributed input must be 3-D (batch, time, features), got shape "
                             f"{input_shape}")
        self.layer.build(input_shape)
        self.layer.built = self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 3:
            raise ValueError(f"TimeDistributed input must be 3-D (batch, time, features), got shape "
                             f"{tuple(x.shape)}")
        return self.layer(x, mask)

    def keras_variables(self) -> dict[str, list[np.ndarray]]:
        return self.layer.keras_variables()

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        self.layer.set_keras_variables(variables, where)

    def get_config(self) -> dict[str, Any]:
        return {"layer": {"class_name": type(self.layer).__name__, "config": self.layer.get_config()}}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "TimeDistributed":
        inner = config["layer"]
        return cls(from_config(inner["class_name"], inner["config"]))


def _compact(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Move each row's real steps to the front, in order: (x, lengths, order or None)."""
    lengths = mask.sum(1)
    steps = torch.arange(mask.shape[1], device=mask.device)
    if torch.equal(mask, steps < lengths[:, None]):  # already right-padded
        return x, lengths, None
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # (B, T)
    return x.gather(1, order[..., None].expand_as(x)), lengths, order


def _carry(compact: Tensor, mask: Tensor) -> Tensor:
    """Keras' masked outputs: at each step, the output of the last real step so far (zeros
    before the first). compact (B, T, F): each row's real steps' outputs first, in order
    (_compact); mask (B, T) in processing order. The last real step so far is the
    compacted one at (real steps so far) - 1."""
    seen = mask.long().cumsum(1)  # (B, T)
    picked = compact.gather(1, (seen - 1).clamp(min=0)[..., None].expand_as(compact))
    return torch.where((seen > 0)[..., None], picked, torch.zeros_like(picked))


class GRU(Layer):
    """Keras' GRU layer on grukit's engine (input (B, T, F), batch first).

    Returns the last output (B, units), or every output (B, T, units) with
    ``return_sequences``; with ``return_state`` a pair (output, state). ``dropout``
    drops input features and ``recurrent_dropout`` state units that feed the
    recurrent matmul, each with one mask per sequence in training (Keras' scheme,
    on the fused engine too). ``zoneout`` and ``layer_norm`` (grukit's own, not
    Keras'): see ``gk.GRU``.
    ``stateful`` carries the final state to the next call (same batch size) until
    ``reset_states()``; it starts from zeros. ``layer(x, initial_state=h0)`` starts
    from h0 (B, units) instead.

    Masked steps are skipped, as in Keras: the state passes through them unchanged,
    and their output is the last real step's (zeros before the first), or zeros with
    ``zero_output_for_mask=True``. With ``go_backwards`` the outputs come in reverse
    time order and the input's mask passes on as it came (Keras' behaviour).
    """

    def __init__(self, units: int, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, reset_after: bool = True, engine: str = "auto",
                 zoneout: float = 0.0, layer_norm: bool = False, use_bias: bool = True,
                 zero_output_for_mask: bool = False, _bidirectional: bool = False,
                 activation: str = "tanh", recurrent_activation: str = "sigmoid", unroll: bool = False,
                 kernel_initializer: Any = None, recurrent_initializer: Any = None,
                 bias_initializer: Any = None, kernel_regularizer: Any = None,
                 recurrent_regularizer: Any = None, bias_regularizer: Any = None, implementation: int = 2,
                 **keras: Any) -> None:
        super().__init__(**keras)
        self._weight_options({"kernel": kernel_initializer, "recurrent": recurrent_initializer,
                              "bias": bias_initializer},
                             {"kernel": kernel_regularizer, "recurrent": recurrent_regularizer,
                              "bias": bias_regularizer})
        # Keras' defaults, the GRU's equations (cuDNN's and torch's too); unroll changes no number
        for what, value, only in (("activation", activation, "tanh"),
                                  ("recurrent_activation", recurrent_activation, "sigmoid")):
            if value != only:
                raise ValueError(f"{what} must be {only!r} (the GRU equations grukit computes, as cuDNN "
                                 f"and torch.nn.GRU do), got {value!r}")
        _checks.boolean("unroll", unroll)
        if implementation not in (0, 1, 2) or isinstance(implementation, bool):  # Keras 2's, no effect
            raise ValueError(f"implementation must be 0, 1 or 2 (Keras 2's choice of kernels; no effect on "
                             f"the numbers), got {implementation!r}")
        self.units = _checks.positive_int("units", units)
        self.return_sequences = _checks.boolean("return_sequences", return_sequences)
        self.return_state = _checks.boolean("return_state", return_state)
        self.go_backwards = _checks.boolean("go_backwards", go_backwards)
        self.stateful = _checks.boolean("stateful", stateful)
        self.dropout = _checks.probability("dropout", dropout)
        self.recurrent_dropout = _checks.probability("recurrent_dropout", recurrent_dropout)
        self.reset_after = _checks.boolean("reset_after", reset_after)
        self.engine = engine
        self.zoneout = _checks.probability("zoneout", zoneout)
        self.layer_norm = _checks.boolean("layer_norm", layer_norm)
        if self.layer_norm and not self.reset_after:
            raise ValueError("layer_norm=True needs reset_after=True, got reset_after=False")
        self.use_bias = _checks.boolean("use_bias", use_bias)
        self.zero_output_for_mask = _checks.boolean("zero_output_for_mask", zero_output_for_mask)
        self.bidirectional = bool(_bidirectional)
        self.state: Optional[Tensor] = None

    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"GRU input must be 3-D (batch, time, features), got shape {input_shape}")
        self.gru = _GRUModule(input_shape[-1], self.units, bias=self.use_bias, batch_first=True,
                              reset_after=self.reset_after,
                              bidirectional=self.bidirectional, engine=self.engine, zoneout=self.zoneout,
                              recurrent_dropout=self.recurrent_dropout, layer_norm=self.layer_norm)
        if self.use_bias and not self.reset_after:
            # Keras' GRU without reset_after has one bias, outside both matmuls; torch's form has
            # two that add up (b_ih + b_hh), whose gradients would move their sum twice as far
            # as Keras moves its bias. b_hh stays at zero and out of training: one bias, as Keras.
            for p in self.fixed_parameters():
                with torch.no_grad():
                    p.zero_()
                p.requires_grad_(False)
        self._initialize()
        self.built = True

    def fixed_parameters(self) -> list[nn.Parameter]:
        if not self.use_bias or self.reset_after or not hasattr(self, "gru"):
            return []
        return [p for name, p in self.gru.named_parameters() if name.startswith("bias_hh")]

    def _directions(self) -> list[str]:
        return ["", "_reverse"] if self.bidirectional else [""]

    def keras_tensors(self) -> list[list[tuple[str, Tensor]]]:
        return [list(zip(("kernel", "recurrent", "bias"), keras_weights.gru_keras_tensors(self.gru, d),
                         strict=False)) for d in self._directions()]

    def _set_keras_group(self, direction: int, arrays: list[np.ndarray], where: str) -> None:
        keras_weights.gru_from_keras(self.gru, self._directions()[direction], arrays, where)

    def reset_states(self) -> None:
        self.state = None

    def call(self, x: Tensor, mask: Mask, initial_state: Optional[Any] = None) -> tuple[Any, Mask]:
        if x.dim() != 3:
            raise ValueError(f"GRU input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        B, D = x.shape[0], 2 if self.bidirectional else 1
        run_mask = mask
        if self.go_backwards:
            x = x.flip(1)
            run_mask = None if mask is None else mask.flip(1)
        if self.training and self.dropout > 0:  # one input mask per sequence
            keep = torch.bernoulli(x.new_full((B, 1, x.shape[2]), 1 - self.dropout))
            x = x * keep / (1 - self.dropout)
        order, lengths = None, None
        if run_mask is not None:
            x, lengths, order = _compact(x, run_mask)
        h0 = self.state if initial_state is None else self._initial_state(initial_state, x)
        if h0 is not None and h0.shape[1] != B:
            raise ValueError(f"a stateful GRU needs the same batch size on every call until "
                             f"reset_states(): carried {h0.shape[1]}, got {B}")
        out, h_n = self.gru(x, h0, lengths=lengths)
        if self.stateful:
            self.state = h_n.detach()
        if run_mask is not None and not self.zero_output_for_mask:
            out = _carry(out, run_mask)  # Keras: a masked step repeats the last real output
        elif order is not None:  # back to the original time positions (masked steps get 0)
            out = torch.zeros_like(out).scatter(1, order[..., None].expand_as(out), out)
        state = h_n[-D:].transpose(0, 1).reshape(B, D * self.units)  # (B, D*units)
        if self.return_sequences:
            y = out
        elif run_mask is None:
            y = state
        else:  # the last step's output: zeros for a row without real steps (or masked last)
            real = run_mask[:, -1] if self.zero_output_for_mask else run_mask.any(1)
            y = torch.where(real[:, None], state, torch.zeros_like(state))
        if self.return_state:
            return (y, state), (mask if self.return_sequences else None)
        return y, (mask if self.return_sequences else None)

    def _initial_state(self, value: Any, x: Tensor) -> Tensor:
        """initial_state (B, units), or per direction inside Bidirectional -> h0 (D, B, units)."""
        D, B = (2 if self.bidirectional else 1), x.shape[0]
        states = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(states) != D:
            raise ValueError(f"initial_state must hold {D} state(s) of shape ({B}, {self.units}), "
                             f"got {len(states)}")
        for h in states:
            _checks.tensor("initial_state", h)
            _checks.shape("initial_state", h, (B, self.units), "(batch, units)")
        return torch.stack([h.to(x.dtype) for h in states])

    def keras_variables(self) -> dict[str, list[np.ndarray]]:
        return {"cell/vars": keras_weights.gru_to_keras(self.gru, "")}

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        keras_weights.gru_from_keras(self.gru, "", variables["cell/vars"], where)

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout, "reset_after": self.reset_after,
                "engine": self.engine, "zoneout": self.zoneout, "layer_norm": self.layer_norm,
                "use_bias": self.use_bias, "zero_output_for_mask": self.zero_output_for_mask,
                "_bidirectional": self.bidirectional, **self._options_config()}

    def _adopt_options(self, other: "GRU") -> "GRU":
        """Take other's initializers and regularizers as they are (Bidirectional's copies of a
        layer; get_config holds the regularizers only in their saved form)."""
        self.initializers, self.regularizers = dict(other.initializers), dict(other.regularizers)
        self._trainable = other.trainable
        return self


class MinGRU(Layer):
    """minGRU (``gk.MinGRU``) as a Keras-style layer, input (B, T, F): the last output
    (B, units), or every output with ``return_sequences``. Masked steps are skipped
    like GRU's: each row runs for its own real steps."""

    def __init__(self, units: int, return_sequences: bool = False, engine: str = "auto",
                 **keras: Any) -> None:
        super().__init__(**keras)
        self.units = _checks.positive_int("units", units)
        self.return_sequences = _checks.boolean("return_sequences", return_sequences)
        self.engine = engine

    def build(self, input_shape: tuple[int, ...]) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"MinGRU input must be 3-D (batch, time, features), got shape {input_shape}")
        self.rnn = _MinGRUModule(input_shape[-1], self.units, batch_first=True, engine=self.engine)
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        if x.dim() != 3:
            raise ValueError(f"MinGRU input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        order, lengths = None, None
        if mask is not None:
            x, lengths, order = _compact(x, mask)
        out, h_n = self.rnn(x, lengths=lengths)
        if not self.return_sequences:
            return h_n[-1], None
        if order is not None:
            out = torch.zeros_like(out).scatter(1, order[..., None].expand_as(out), out)
        return out, mask

    def get_config(self) -> dict[str, Any]:
        return {"units": self.units, "return_sequences": self.return_sequences, "engine": self.engine}


class GRUCell(Layer):
    """Keras' GRUCell: the settings of one GRU step (units, reset_after, use_bias, dropout,
    recurrent_dropout, initializers and regularizers), for ``layers.RNN``, which runs it over
    the sequence: ``RNN(GRUCell(32))`` is ``GRU(32)``, and ``RNN([GRUCell(32), GRUCell(16)])``
    steps a stack of cells. A cell is not called on its own here."""

    OPTIONS = ("reset_after", "use_bias", "dropout", "recurrent_dropout", "activation",
               "recurrent_activation", "kernel_initializer", "recurrent_initializer", "bias_initializer",
               "kernel_regularizer", "recurrent_regularizer", "bias_regularizer")

    def __init__(self, units: int, **options: Any) -> None:
        keras = {k: options.pop(k) for k in list(options) if k not in self.OPTIONS}
        super().__init__(**keras)
        self.units = _checks.positive_int("units", units)
        GRU(self.units, **options)  # checks them, as GRU names them
        self.options = options
        self.built = True

    def call(self, x: Tensor, mask: Mask) -> tuple[Tensor, Mask]:
        raise TypeError("a GRUCell runs inside layers.RNN (RNN(GRUCell(units)) is GRU(units)); grukit does "
                        "not call a cell on its own (gk.GRUCell is the PyTorch-style cell)")

    def get_config(self) -> dict[str, Any]:
        """As GRU's: the regularizers in their saved form, no initializers (the weights hold
        what they drew)."""
        config: dict[str, Any] = {"units": self.units}
        for key, value in self.options.items():
            if key.endswith("_regularizer"):
                config[key] = None if value is None else regs.serialize(regs.get(key, value))
            elif not key.endswith("_initializer"):
                config[key] = value
        return config


class RNN(Layer):
    """Keras' RNN over GRU cells: ``RNN(GRUCell(u))`` runs as ``GRU(u)``; a list of cells is
    Keras' stacked cells, each step through them all (which equals a stack of GRU layers,
    each but the last returning its sequence). ``return_sequences``, ``return_state`` (the
    output, then each cell's final state), ``go_backwards``, ``stateful``,
    ``zero_output_for_mask`` and ``initial_state`` (a state per cell) as Keras'. Other cells
    than GRUCell are not taken. Keras files do not hold this layer (use GRU layers)."""

    def __init__(self, cell: Any, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, unroll: bool = False,
                 zero_output_for_mask: bool = False, **keras: Any) -> None:
        super().__init__(**keras)
        cells = list(cell) if isinstance(cell, (list, tuple)) else [cell]
        if not cells or not all(isinstance(c, GRUCell) for c in cells):
            raise TypeError(f"cell must be a grukit.layers.GRUCell or a list of them, got "
                            f"{_checks.describe(cell)}")
        _checks.boolean("unroll", unroll)
        self.return_sequences = _checks.boolean("return_sequences", return_sequences)
        self.return_state = _checks.boolean("return_state", return_state)
        self.go_backwards = _checks.boolean("go_backwards", go_backwards)
        self.stateful = _checks.boolean("stateful", stateful)
        self.zero_output_for_mask = _checks.boolean("zero_output_for_mask", zero_output_for_mask)
        self.cells = cells
        last = len(cells) - 1
        self.grus = nn.ModuleList(GRU(c.units, return_sequences=i < last or self.return_sequences,
                                      return_state=True, stateful=self.stateful,
                                      zero_output_for_mask=self.zero_output_for_mask if i == last else False,
                                      **c.options) for i, c in enumerate(cells))
        self.built = True

    def reset_states(self) -> None:
        for gru in self.grus:
            gru.reset_states()

    def call(self, x: Tensor, mask: Mask, initial_state: Optional[Any] = None) -> tuple[Any, Mask]:
        if x.dim() != 3:
            raise ValueError(f"RNN input must be 3-D (batch, time, features), got shape {tuple(x.shape)}")
        states = [None] * len(self.grus)
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            if len(states) != len(self.grus):
                raise ValueError(f"initial_state must hold {len(self.grus)} state(s), one per cell, got "
                                 f"{len(states)}")
        run_mask = mask
        if self.go_backwards:  # the whole stack steps over the reversed sequence, masks along
            x, run_mask = x.flip(1), None if mask is None else mask.flip(1)
        finals = []
        for gru, h0 in zip(self.grus, states, strict=True):
            (x, h), _ = gru(x, run_mask, initial_state=h0)
            finals.append(h)
        out_mask = mask if self.return_sequences else None
        if self.return_state:
            return (x, *finals), out_mask
        return x, out_mask

    def keras_tensors(self) -> list[list[tuple[str, Tensor]]]:
        return []  # each GRU layer inside holds its own (Layer.losses reaches them)

    def keras_variables(self) -> dict[str, list[np.ndarray]]:
        return {f"cell/cells/{i}/vars" if len(self.grus) > 1 else "cell/vars":
                gru.keras_variables()["cell/vars"] for i, gru in enumerate(self.grus)}

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        for i, gru in enumerate(self.grus):
            key = f"cell/cells/{i}/vars" if len(self.grus) > 1 else "cell/vars"
            gru.set_keras_variables({"cell/vars": variables[key]}, f"{where} cell {i}")

    def get_config(self) -> dict[str, Any]:
        return {"cell": [{"class_name": "GRUCell", "config": c.get_config()} for c in self.cells],
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful,
                "zero_output_for_mask": self.zero_output_for_mask}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RNN":
        config = dict(config)
        cells = [GRUCell(**c["config"]) for c in config.pop("cell")]
        return cls(cells, **config)


class Bidirectional(Layer):
    """Runs a GRU layer forwards and backwards over the same input (Keras' Bidirectional).

    ``merge_mode``: "concat" (the default), "sum", "mul", "ave", or None for the two
    outputs as a pair (forward, backward). With the layer's ``return_state`` the states
    follow the output(s): ``(y, h_forward, h_backward)``, or ``(y_f, y_b, h_f, h_b)``
    with merge_mode None. ``layer(x, initial_state=[h_f, h_b])`` starts both directions
    from given states (B, units) each. With ``return_sequences``, masked steps output
    zeros in both directions, as Keras forces for its two layers.

    ``backward_layer``: a second GRU layer for the backward direction (Keras' argument),
    which may differ from ``layer`` (units, reset_after, dropout, ...); it must have the
    other ``go_backwards`` value and the same ``return_sequences``, ``return_state`` and
    ``stateful``. The two then run as two layers (without it, one fused bidirectional
    GRU), and a returned sequence of the backward layer is flipped back into time order.
    """

    MERGES = {"concat": None, "sum": torch.add, "mul": torch.mul, "ave": lambda a, b: (a + b) / 2}

    def __init__(self, layer: GRU, merge_mode: Optional[str] = "concat",
                 backward_layer: Optional[GRU] = None, **keras: Any) -> None:
        super().__init__(**keras)
        if not isinstance(layer, GRU):
            raise TypeError(f"layer must be a grukit.layers.GRU, got {_checks.describe(layer)}")
        if merge_mode is not None:
            _checks.choice("merge_mode", merge_mode, tuple(self.MERGES))
        self.merge_mode = merge_mode
        self.return_state = layer.return_state
        self.return_sequences = layer.return_sequences
        self.backward_layer: Optional[GRU] = None
        zero = {"zero_output_for_mask": layer.return_sequences}  # Keras forces it on both layers
        if backward_layer is None:
            self.layer = GRU(**{**layer.get_config(), "_bidirectional": True, **zero})._adopt_options(layer)
        else:
            if not isinstance(backward_layer, GRU):
                raise TypeError("backward_layer must be a grukit.layers.GRU, got "
                                f"{_checks.describe(backward_layer)}")
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError("layer and backward_layer must have different go_backwards values, got "
                                 f"{layer.go_backwards} for both")
            for name in ("stateful", "return_sequences", "return_state"):
                if getattr(layer, name) != getattr(backward_layer, name):
                    raise ValueError(f"layer and backward_layer must have the same {name}, got "
                                     f"{getattr(layer, name)} and {getattr(backward_layer, name)}")
            if merge_mode in ("sum", "mul", "ave") and layer.units != backward_layer.units:
                raise ValueError(f"merge_mode={merge_mode!r} needs the same units in both layers, got "
                                 f"{layer.units} and {backward_layer.units}")
            self.layer = GRU(**{**layer.get_config(), **zero})._adopt_options(layer)
            backward = GRU(**{**backward_layer.get_config(), **zero})
            self.backward_layer = backward._adopt_options(backward_layer)
        self.built = True

    def _directions(self, x: Tensor, mask: Mask, initial_state: Optional[Any]) -> tuple[Any, ...]:
        """(forward output, backward output, forward state, backward state, mask) of the
        two-layer form, as Keras' Bidirectional calls its two layers."""
        states = [None, None]
        if initial_state is not None:
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2:
                raise ValueError("initial_state must hold 2 states, (B, units) of each layer")
            states = list(initial_state)
        y, out_mask = self.layer(x, mask, initial_state=states[0])
        y_rev, _ = self.backward_layer(x, mask, initial_state=states[1])
        h = h_rev = None
        if self.return_state:
            (y, h), (y_rev, h_rev) = y, y_rev
        if self.return_sequences:
            y_rev = y_rev.flip(1)
        return y, y_rev, h, h_rev, out_mask

    def call(self, x: Tensor, mask: Mask, initial_state: Optional[Any] = None) -> tuple[Any, Mask]:
        if self.backward_layer is not None:
            fwd, bwd, h_f, h_b, mask = self._directions(x, mask, initial_state)
            if self.merge_mode is None:
                y = (fwd, bwd)
            elif self.merge_mode == "concat":
                y = torch.cat([fwd, bwd], -1)
            else:
                y = self.MERGES[self.merge_mode](fwd, bwd)
            if self.return_state:
                y = (*y, h_f, h_b) if self.merge_mode is None else (y, h_f, h_b)
            return y, mask
        y, mask = self.layer(x, mask, initial_state=initial_state)
        units = self.layer.units
        if self.return_state:
            y, state = y  # state (B, 2 * units): both directions' final states
        fwd, bwd = y[..., :units], y[..., units:]
        if self.merge_mode is None:
            y = (fwd, bwd)
        elif self.merge_mode != "concat":
            y = self.MERGES[self.merge_mode](fwd, bwd)
        if self.return_state:
            states = (state[:, :units], state[:, units:])
            y = (*y, *states) if self.merge_mode is None else (y, *states)
        return y, mask

    def reset_states(self) -> None:
        self.layer.reset_states()
        if self.backward_layer is not None:
            self.backward_layer.reset_states()

    def _keras_directions(self) -> tuple[tuple[Any, str], tuple[Any, str]]:
        gru = self.layer.gru
        backward = (self.backward_layer.gru, "") if self.backward_layer is not None else (gru, "_reverse")
        return (gru, ""), backward

    def keras_variables(self) -> dict[str, list[np.ndarray]]:
        forward, backward = self._keras_directions()
        return {"forward_layer/cell/vars": keras_weights.gru_to_keras(*forward),
                "backward_layer/cell/vars": keras_weights.gru_to_keras(*backward)}

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        forward, backward = self._keras_directions()
        keras_weights.gru_from_keras(*forward, variables["forward_layer/cell/vars"], where + " forward")
        keras_weights.gru_from_keras(*backward, variables["backward_layer/cell/vars"], where + " backward")

    def get_config(self) -> dict[str, Any]:
        config = {"merge_mode": self.merge_mode}
        for key, layer in (("layer", self.layer), ("backward_layer", self.backward_layer)):
            if layer is not None:
                inner = {**layer.get_config(), "_bidirectional": False}
                inner.pop("zero_output_for_mask")
                config[key] = inner
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Bidirectional":
        backward = config.get("backward_layer")
        return cls(GRU(**config["layer"]), config["merge_mode"],
                   None if backward is None else GRU(**backward))


class _Merge(Layer):
    """Keras' merge layers, for functional models (gk.Model): a list of tensors of one shape
    made into one, element by element. A step is real where it is real in every input that
    has a mask (Keras' rule)."""

    fewest, most = 2, None  # how many inputs the layer takes

    def __init__(self, **keras: Any) -> None:
        super().__init__(**keras)
        self.built = True

    def _check(self, x: Any) -> list[Tensor]:
        kind = type(self).__name__
        if not isinstance(x, (list, tuple)) or not all(isinstance(t, Tensor) for t in x):
            raise TypeError(f"{kind} takes a list of tensors (layers' outputs in a functional model), got "
                            f"{_checks.describe(x)}")
        if len(x) < self.fewest or (self.most is not None and len(x) > self.most):
            want = self.fewest if self.most == self.fewest else f"at least {self.fewest}"
            raise ValueError(f"{kind} takes {want} tensors, got {len(x)}")
        return list(x)

    def _same_shapes(self, x: list[Tensor]) -> None:
        if any(t.shape != x[0].shape for t in x):
            raise ValueError(f"{type(self).__name__} needs inputs of one shape, got "
                             f"{[tuple(t.shape) for t in x]}")

    @staticmethod
    def _masks(mask: Any) -> Mask:
        found = [m for m in (mask or []) if m is not None]
        return functools.reduce(torch.logical_and, found) if found else None

    def call(self, x: Any, mask: Any) -> tuple[Tensor, Mask]:
        x = self._check(x)
        self._same_shapes(x)
        return self.combine(x), self._masks(mask)

    def combine(self, x: list[Tensor]) -> Tensor:
        raise NotImplementedError


class Add(_Merge):
    """Keras' Add: the sum of the inputs."""

    def combine(self, x: list[Tensor]) -> Tensor:
        return functools.reduce(torch.add, x)


class Subtract(_Merge):
    """Keras' Subtract: the first input minus the second."""

    fewest = most = 2

    def combine(self, x: list[Tensor]) -> Tensor:
        return x[0] - x[1]


class Multiply(_Merge):
    """Keras' Multiply: the product of the inputs."""

    def combine(self, x: list[Tensor]) -> Tensor:
        return functools.reduce(torch.mul, x)


class Average(_Merge):
    """Keras' Average: the mean of the inputs."""

    def combine(self, x: list[Tensor]) -> Tensor:
        return functools.reduce(torch.add, x) / len(x)


class Maximum(_Merge):
    """Keras' Maximum: the largest of the inputs, element by element."""

    def combine(self, x: list[Tensor]) -> Tensor:
        return functools.reduce(torch.maximum, x)


class Minimum(_Merge):
    """Keras' Minimum: the smallest of the inputs, element by element."""

    def combine(self, x: list[Tensor]) -> Tensor:
        return functools.reduce(torch.minimum, x)


class Concatenate(_Merge):
    """Keras' Concatenate: the inputs joined along ``axis`` (default -1, the features; their
    other axes must agree). Joined along the time axis (1, of 3-D inputs) their masks are
    joined too (an input without one: all real); otherwise a step is real where it is real
    in every input that has a mask."""

    def __init__(self, axis: int = -1, **keras: Any) -> None:
        super().__init__(**keras)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(f"axis must be a nonzero int (axis 0 is the batch), got {axis!r}")
        self.axis = axis

    def call(self, x: Any, mask: Any) -> tuple[Tensor, Mask]:
        x = self._check(x)
        dims = {t.dim() for t in x}
        if len(dims) != 1 or not -x[0].dim() <= self.axis < x[0].dim():
            raise ValueError(f"Concatenate(axis={self.axis}) needs inputs with one number of axes that "
                             f"include it, got shapes {[tuple(t.shape) for t in x]}")
        axis = self.axis % x[0].dim()
        if any(t.shape[:axis] + t.shape[axis + 1:] != x[0].shape[:axis] + x[0].shape[axis + 1:] for t in x):
            raise ValueError(f"Concatenate(axis={self.axis}) needs inputs that agree on every other axis, "
                             f"got shapes {[tuple(t.shape) for t in x]}")
        out = torch.cat(x, dim=axis)
        if mask is None:
            return out, None
        if axis == 1 and x[0].dim() == 3:  # joined in time: so are the masks
            full = [m if m is not None else torch.ones(t.shape[:2], dtype=torch.bool, device=t.device)
                    for t, m in zip(x, mask, strict=True)]
            return out, torch.cat(full, dim=1)
        return out, self._masks(mask)

    def get_config(self) -> dict[str, Any]:
        return {"axis": self.axis}


class Attention(Layer):
    """Keras' Attention: Luong's dot-product attention, for functional models (a decoder's
    steps reading an encoder's). Called on [query (B, Tq, dim), value (B, Tv, dim)] or
    [query, value, key (B, Tv, dim)] (the key is the value if left out): scores = query . key
    (times a learned scalar with ``use_scale``), or with ``score_mode="concat"`` a learned
    scalar times the sum of tanh(query + key) over the features; a softmax over the value's
    steps (its masked steps left out), ``dropout`` on those weights in training; the output
    (B, Tq, dim) is the weighted sum of the values, zero at the query's masked steps, which
    stay masked."""

    def __init__(self, use_scale: bool = False, score_mode: str = "dot", dropout: float = 0.0,
                 **keras: Any) -> None:
        super().__init__(**keras)
        self.use_scale = _checks.boolean("use_scale", use_scale)
        self.score_mode = _checks.choice("score_mode", score_mode, ("dot", "concat"))
        self.dropout = _checks.probability("dropout", dropout)
        self.scale = nn.Parameter(torch.ones(())) if self.use_scale else None  # Keras' "ones"
        self.concat_score_weight = nn.Parameter(torch.ones(())) if score_mode == "concat" else None
        self.built = True

    def _parts(self, x: Any, mask: Any) -> tuple[Tensor, Tensor, Tensor, Mask, Mask]:
        kind = type(self).__name__
        if not (isinstance(x, (list, tuple)) and 2 <= len(x) <= 3 and all(isinstance(t, Tensor) for t in x)):
            raise TypeError(f"{kind} takes a list [query, value] or [query, value, key] of tensors, got "
                            f"{_checks.describe(x)}")
        query, value = x[0], x[1]
        key = x[2] if len(x) == 3 else value
        if (query.dim() != 3 or value.dim() != 3 or key.dim() != 3 or key.shape[:2] != value.shape[:2]
                or query.shape[0] != value.shape[0]):
            raise ValueError(f"{kind} needs query (batch, Tq, dim) and value and key (batch, Tv, dim), got "
                             f"shapes {[tuple(t.shape) for t in x]}")
        masks = list(mask) if mask else [None, None]
        return query, value, key, masks[0], masks[1]

    def scores(self, query: Tensor, key: Tensor) -> Tensor:
        if self.score_mode == "dot":
            found = query @ key.transpose(1, 2)
            return found * self.scale if self.scale is not None else found
        joined = query[:, :, None, :] + key[:, None, :, :]
        if self.scale is not None:
            joined = self.scale * joined
        return self.concat_score_weight * torch.tanh(joined).sum(-1)

    def call(self, x: Any, mask: Any) -> tuple[Tensor, Mask]:
        query, value, key, query_mask, value_mask = self._parts(x, mask)
        if query.shape[-1] != key.shape[-1]:
            raise ValueError(f"{type(self).__name__} needs query and key of one feature size, got "
                             f"{query.shape[-1]} and {key.shape[-1]}")
        scores = self.scores(query, key)
        if value_mask is not None:  # Keras' way: a large negative number at the masked steps
            scores = torch.where(value_mask[:, None, :], scores, scores - 1e9)
        weights = F.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training)
        out = weights @ value
        if query_mask is not None:
            out = torch.where(query_mask[..., None], out, torch.zeros_like(out))
        return out, query_mask

    def keras_tensors(self) -> list[list[tuple[str, Tensor]]]:
        found = [("scale", self.scale)] if self.scale is not None else []
        if self.concat_score_weight is not None:
            found.append(("concat_score_weight", self.concat_score_weight))
        return [found] if found else []

    def set_keras_variables(self, variables: dict[str, list[Any]], where: str) -> None:
        arrays = [np.asarray(a) for a in variables["vars"]]
        _copy_into(list(self.parameters()), arrays, where, type(self).__name__, [a.shape for a in arrays])

    def get_config(self) -> dict[str, Any]:
        return {"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout}


class AdditiveAttention(Attention):
    """Keras' AdditiveAttention: Bahdanau's attention, for functional models. As Attention, with
    scores = the sum over the features of scale * tanh(query + key), ``scale`` a learned vector
    of the feature size (``use_scale``, the default; Keras' glorot-uniform start)."""

    def __init__(self, use_scale: bool = True, dropout: float = 0.0, **keras: Any) -> None:
        super().__init__(use_scale=False, dropout=dropout, **keras)
        self.use_scale = _checks.boolean("use_scale", use_scale)
        self.built = not self.use_scale  # the scale's size comes from the first call

    def build(self, input_shape: Any) -> None:
        dim = input_shape[0][-1]
        limit = math.sqrt(3.0 / dim)  # glorot-uniform of a vector: fan in = fan out = dim
        self.scale = nn.Parameter(torch.empty(dim).uniform_(-limit, limit))
        self.built = True

    def scores(self, query: Tensor, key: Tensor) -> Tensor:
        joined = torch.tanh(query[:, :, None, :] + key[:, None, :, :])
        return (joined * self.scale if self.scale is not None else joined).sum(-1)

    def get_config(self) -> dict[str, Any]:
        return {"use_scale": self.use_scale, "dropout": self.dropout}


def add(inputs: list, **keras: Any) -> Any:
    """Keras' ``layers.add(inputs)``: ``Add()(inputs)``."""
    return Add(**keras)(inputs)


def subtract(inputs: list, **keras: Any) -> Any:
    """Keras' ``layers.subtract(inputs)``: ``Subtract()(inputs)``."""
    return Subtract(**keras)(inputs)


def multiply(inputs: list, **keras: Any) -> Any:
    """Keras' ``layers.multiply(inputs)``: ``Multiply()(inputs)``."""
    return Multiply(**keras)(inputs)


def average(inputs: list, **keras: Any) -> Any:
    """Keras' ``layers.average(inputs)``: ``Average()(inputs)``."""
    return Average(**keras)(inputs)


def maximum(inputs: list, **keras: Any) -> Any:
    """Keras' ``layers.maximum(inputs)``: ``Maximum()(inputs)``."""
    return Maximum(**keras)(inputs)


def minimum(inputs: list, **keras: Any) -> Any:
    """Keras' ``layers.minimum(inputs)``: ``Minimum()(inputs)``."""
    return Minimum(**keras)(inputs)


def concatenate(inputs: list, axis: int = -1, **keras: Any) -> Any:
    """Keras' ``layers.concatenate(inputs, axis=-1)``: ``Concatenate(axis)(inputs)``."""
    return Concatenate(axis, **keras)(inputs)


LAYERS = {c.__name__: c for c in (Input, Embedding, Masking, Dense, Dropout, GlobalAveragePooling1D,
                                  GlobalMaxPooling1D, RepeatVector, TimeDistributed, GRU, MinGRU,
                                  Bidirectional, Flatten, Activation, Conv1D, MaxPooling1D, GRUCell, RNN,
                                  Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Attention,
                                  AdditiveAttention)}


def from_config(name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from its class name and get_config()."""
    if name not in LAYERS:
        raise ValueError(f"unknown layer class {name!r}; known: {sorted(LAYERS)}")
    cls = LAYERS[name]
    config = dict(config)
    given = config.pop("name", None)  # Sequential.get_config adds a layer's name when it has one
    trainable = config.pop("trainable", True)  # and trainable=False when it is frozen
    layer = cls.from_config(config) if hasattr(cls, "from_config") else cls(**config)
    layer.name = given
    if not trainable:
        layer.trainable = False
    return layer
