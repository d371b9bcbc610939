"""Keras' weight regularizers, by Keras' names, for the Keras-style layers'
``kernel_regularizer``, ``recurrent_regularizer``, ``bias_regularizer`` and
``embeddings_regularizer``.

A regularizer maps a weight to a penalty (a scalar tensor); a layer's ``losses`` are the
penalties of its weights, and ``fit`` and ``evaluate`` add their sum to the loss, as Keras
does (the logged loss includes them). The weight is given in Keras' layout (a GRU's
kernel (input, 3 * units), gate blocks z, r, h), so that a callable written for Keras
sees what it would there; L1 and L2 do not depend on the layout.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from .. import _checks


def _factor(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


class Regularizer:
    """A Keras regularizer: ``reg(weight)`` -> a scalar penalty."""

    def __call__(self, x: Tensor) -> Tensor:
        return x.new_zeros(())

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x^2); both 0 by default, as Keras' class."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)

    def __call__(self, x: Tensor) -> Tensor:
        out = x.new_zeros(())
        if self.l1:
            out = out + self.l1 * x.abs().sum()
        if self.l2:
            out = out + self.l2 * x.square().sum()
        return out

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """l1 * sum(|x|), 0.01 by default."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """l2 * sum(x^2), 0.01 by default."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Keras' ``regularizers.l1_l2``: both penalties, 0.01 each by default."""
    return L1L2(l1, l2)


l1, l2 = L1, L2  # Keras' lower-case names: regularizers.l2(1e-4)

# Keras' names; "l1_l2" as Keras 2 read it (0.01 each: Keras 3 no longer takes it)
NAMES: dict[str, Callable[[], Regularizer]] = {"L1": L1, "l1": L1, "L2": L2, "l2": L2, "L1L2": L1L2,
                                               "l1l2": L1L2, "l1_l2": l1_l2}

Reg = Callable[[Tensor], Tensor]


def get(name: str, value: Any) -> Optional[Reg]:
    """The regularizer an argument names (``name`` is the argument's, for the error): None,
    a Keras name, an instance, or a callable weight -> penalty."""
    if isinstance(value, dict) and set(value) == {"class_name", "config"} and value["class_name"] in _CLASSES:
        return _CLASSES[value["class_name"]](**value["config"])  # as serialize() wrote it
    return _checks.keras_object(name, value, NAMES, "regularizer", str(sorted(NAMES)), "weight -> penalty")


_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2)}


def serialize(reg: Reg) -> Optional[dict[str, Any]]:
    """How a layer's config saves a regularizer: grukit's own (and Keras' L1, L2, L1L2) as
    {"class_name", "config"}; another callable cannot be saved (a warning says so, and the
    loaded model trains without it)."""
    name = type(reg).__name__
    if name in _CLASSES and hasattr(reg, "get_config"):
        return {"class_name": name, "config": {k: float(v) for k, v in reg.get_config().items()}}
    warnings.warn(f"the regularizer {reg!r} is not one of Keras' L1, L2, L1L2 and is not saved with the "
                  "model: give it again after loading to go on training with it", stacklevel=4)
    return None


def penalty(reg: Reg, weight: Tensor, name: str) -> Tensor:
    """reg(weight), checked to be one number."""
    out = reg(weight)
    if not isinstance(out, Tensor):
        out = torch.as_tensor(out, dtype=weight.dtype, device=weight.device)
    if out.numel() != 1:
        raise ValueError(f"{name} must give one number per weight, got shape {tuple(out.shape)}")
    return out.reshape(())
