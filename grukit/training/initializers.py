"""Keras' weight initializers, by Keras' names, for the Keras-style layers'
``kernel_initializer``, ``recurrent_initializer``, ``bias_initializer`` and
``embeddings_initializer``.

An initializer is called Keras' way, ``init(shape, dtype=None)``, and returns an array of
that shape in Keras' layout: a kernel is (fan_in, fan_out) (a GRU's (input, 3 * units),
its gate blocks z, r, h), so that the fans, and an orthogonal recurrent kernel, are the
ones Keras computes. A layer copies the array into its torch parameters (the layout
conversion of keras_weights.py). Random draws come from torch's generator, so
``gk.set_seed`` repeats them; ``seed=`` gives an initializer its own. Any callable of that
signature works too, Keras' own initializer objects among them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np
import torch

from .. import _checks

Shape = tuple[int, ...]


def _fans(shape: Shape) -> tuple[int, int]:
    """Keras' fans: (n, n) for a vector, (rows, columns) for a matrix, the receptive field
    times the last two axes for more."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    field = math.prod(shape[:-2])
    return shape[-2] * field, shape[-1] * field


class Initializer:
    """A Keras initializer: ``init(shape, dtype=None)`` -> an array of ``shape``."""

    def __init__(self, seed: Optional[int] = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {_checks.describe(seed)}")
        self.seed = seed

    def _generator(self) -> Optional[torch.Generator]:
        return None if self.seed is None else torch.Generator().manual_seed(self.seed)

    def __call__(self, shape: Shape, dtype: Any = None) -> np.ndarray:
        return self.draw(tuple(int(d) for d in shape)).numpy().astype(np.float32)

    def draw(self, shape: Shape) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed} if self.seed is not None else {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    def draw(self, shape: Shape) -> torch.Tensor:
        return torch.zeros(shape, dtype=torch.float64)


class Ones(Initializer):
    def draw(self, shape: Shape) -> torch.Tensor:
        return torch.ones(shape, dtype=torch.float64)


class Constant(Initializer):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"Constant's value must be a number, got {_checks.describe(value)}")
        self.value = float(value)

    def draw(self, shape: Shape) -> torch.Tensor:
        return torch.full(shape, self.value, dtype=torch.float64)

    def get_config(self) -> dict[str, Any]:
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def draw(self, shape: Shape) -> torch.Tensor:
        return torch.randn(shape, generator=self._generator(), dtype=torch.float64) * self.stddev + self.mean

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(RandomNormal):
    """A normal draw cut at two standard deviations (values beyond are drawn again)."""

    def draw(self, shape: Shape) -> torch.Tensor:
        out = torch.empty(shape, dtype=torch.float64)
        torch.nn.init.trunc_normal_(out, 0.0, 1.0, -2.0, 2.0, generator=self._generator())
        return out * self.stddev + self.mean


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def draw(self, shape: Shape) -> torch.Tensor:
        u = torch.rand(shape, generator=self._generator(), dtype=torch.float64)
        return u * (self.maxval - self.minval) + self.minval

    def get_config(self) -> dict[str, Any]:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class VarianceScaling(Initializer):
    """Keras' VarianceScaling: variance ``scale`` over fan_in, fan_out or their mean, from a
    truncated normal, a normal or a uniform draw (Glorot's, He's and LeCun's are these)."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: Optional[int] = None) -> None:
        super().__init__(seed)
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.scale = float(scale)
        self.mode = _checks.choice("mode", mode, ("fan_in", "fan_out", "fan_avg"))
        self.distribution = _checks.choice("distribution", distribution,
                                           ("truncated_normal", "untruncated_normal", "uniform"))

    def draw(self, shape: Shape) -> torch.Tensor:
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return RandomUniform(-limit, limit, self.seed).draw(shape)
        if self.distribution == "untruncated_normal":
            return RandomNormal(0.0, math.sqrt(variance), self.seed).draw(shape)
        # a normal cut at 2 sigma has 0.8796 of the sigma: widened to keep the variance
        return TruncatedNormal(0.0, math.sqrt(variance) / 0.87962566103423978, self.seed).draw(shape)

    def get_config(self) -> dict[str, Any]:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


def _scaling(name: str, scale: float, mode: str, distribution: str) -> type:
    def __init__(self: Any, seed: Optional[int] = None) -> None:
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self: Any) -> dict[str, Any]:
        return Initializer.get_config(self)

    doc = f"VarianceScaling({scale}, {mode!r}, {distribution!r})"
    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc})


GlorotUniform = _scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    """A matrix with orthonormal rows or columns (whichever are fewer), times ``gain``, from
    the QR decomposition of a normal draw (Saxe et al. 2014; Keras' way, over the whole
    (units, 3 * units) recurrent kernel of a GRU)."""

    def __init__(self, gain: float = 1.0, seed: Optional[int] = None) -> None:
        super().__init__(seed)
        self.gain = float(gain)

    def draw(self, shape: Shape) -> torch.Tensor:
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializes matrices (2 or more axes), got shape {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = torch.randn((max(rows, cols), min(rows, cols)), generator=self._generator(), dtype=torch.float64)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))  # a uniform draw over the orthogonal matrices
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = float(gain)

    def draw(self, shape: Shape) -> torch.Tensor:
        if len(shape) != 2:
            raise ValueError(f"Identity initializes matrices, got shape {shape}")
        return self.gain * torch.eye(*shape, dtype=torch.float64)

    def get_config(self) -> dict[str, Any]:
        return {"gain": self.gain}


_CLASSES = (Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
            GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal, Identity)
# Keras' names: the class names and their snake_case forms, with Keras' aliases
NAMES: dict[str, type] = {cls.__name__: cls for cls in _CLASSES}
NAMES.update({"zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
              "random_normal": RandomNormal, "normal": RandomNormal, "random_uniform": RandomUniform,
              "uniform": RandomUniform, "truncated_normal": TruncatedNormal,
              "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
              "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
              "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
              "identity": Identity})

Init = Callable[..., Any]


def get(name: str, value: Any) -> Optional[Init]:
    """The initializer an argument names (``name`` is the argument's, for the error): None,
    a Keras name, an instance, or a callable ``init(shape, dtype=None)``."""
    known = f"{sorted(k for k in NAMES if k.islower())} (or their class names)"
    return _checks.keras_object(name, value, NAMES, "initializer", known, "init(shape, dtype)")


def make(init: Init, shape: Shape, name: str) -> np.ndarray:
    """The array ``init`` gives for ``shape``, checked."""
    out = np.asarray(init(tuple(shape), dtype="float32"), dtype=np.float32)
    if out.shape != tuple(shape):
        raise ValueError(f"{name} gave an array of shape {out.shape} for a weight of shape {tuple(shape)}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} gave NaN or Inf values")
    return out
