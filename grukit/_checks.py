"""Argument checks shared by the public entry points.

Every failure is a ValueError or TypeError whose message names the argument,
what was expected and what came, so a user can fix the call from the message.

A call's inputs that do not fit the module (shape, size, device, dtype) raise
:class:`InputError` or :class:`InputDTypeError`: ValueError/TypeError as grukit
promises, and also RuntimeError (and ValueError for a dtype), the classes torch.nn.GRU
raises for the same mistakes, so ``except RuntimeError`` written for torch still catches them.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional

import torch
from torch import Tensor


class InputError(ValueError, RuntimeError):
    """An input of the wrong shape, size, rank or device: torch raises RuntimeError (or
    ValueError, for the rank) for the same mistake."""


class InputDTypeError(TypeError, ValueError, RuntimeError):
    """An input of the wrong dtype: torch raises ValueError or RuntimeError for it."""


def describe(value: Any) -> str:
    """A short description of a value for an error message."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype} on {value.device}"
    if isinstance(value, (bool, int, float, str)) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def batch_size(value: Any) -> int:
    """Keras' batch_size: a positive int, None meaning 32 (Keras' default)."""
    return 32 if value is None else positive_int("batch_size", value)


def optional_positive_int(name: str, value: Any) -> Optional[int]:
    return None if value is None else positive_int(name, value)


def keras_object(name: str, value: Any, names: dict, kind: str, known: str, use: str) -> Any:
    """A Keras initializer or regularizer argument (``kind`` says which; ``use`` how a callable
    is called): None, a name of ``names`` (its class made with Keras' defaults), a class, an
    instance or any callable; the error names the argument and the ``known`` names."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"{name} must be one of Keras' {kind}s {known}, or a callable {use}, "
                             f"got {value!r}")
        return names[value]()
    if isinstance(value, type):
        return value()
    if callable(value):
        return value
    raise TypeError(f"{name} must be a Keras {kind}'s name or a callable {use}, got {describe(value)}")


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise TypeError(f"{name} must be a bool, got {describe(value)}")
    return bool(value)


def probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1], got {describe(value)}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {options}, got {describe(value)}")
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def tensor(name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {describe(value)}")
    return value


def like_parameters(name: str, value: Tensor, ref: Tensor) -> None:
    """value must have the dtype and device of the module's parameter ref."""
    if value.dtype != ref.dtype:
        raise InputDTypeError(
            f"{name} must have dtype {ref.dtype} (the module's parameters), got {value.dtype}"
        )
    if value.device != ref.device:
        raise InputError(
            f"{name} must be on {ref.device} (the module's parameters), got {value.device}"
        )


def shape(name: str, value: Tensor, expected: tuple[int, ...], meaning: str) -> None:
    if tuple(value.shape) != expected:
        raise InputError(
            f"{name} must have shape {expected} {meaning}, got {tuple(value.shape)}"
        )


def lengths(value: Any, batch: int, steps: int, device: torch.device) -> Tensor:
    """Validate per-row sequence lengths; returns an int64 tensor on device.

    A length of 0 is allowed: that row's output is all zeros and its final
    state is its initial state.
    """
    if isinstance(value, Tensor):
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(f"lengths must hold integers, got dtype {value.dtype}")
        t = value.detach().to("cpu", torch.int64)
    elif isinstance(value, (list, tuple)):
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
            raise TypeError(f"lengths must be a list of ints, got {value!r}")
        t = torch.tensor(list(value), dtype=torch.int64)
    elif hasattr(value, "__array__") and hasattr(value, "dtype") and value.dtype.kind in "iu":
        t = torch.as_tensor(value).to(torch.int64)
    else:
        raise TypeError(
            f"lengths must be a 1-D int tensor, array or list, got {describe(value)}"
        )
    if t.dim() != 1 or t.shape[0] != batch:
        raise InputError(
            f"lengths must have shape ({batch},), one length per batch row, got {tuple(t.shape)}"
        )
    if batch and (int(t.min()) < 0 or int(t.max()) > steps):
        raise InputError(
            f"lengths must lie in [0, {steps}] (the sequence length), got min {int(t.min())}, "
            f"max {int(t.max())}"
        )
    return t.to(device)


def optional_h(
    name: str, value: Optional[Tensor], expected: tuple[int, ...], ref: Tensor, meaning: str
) -> None:
    if value is None:
        return
    tensor(name, value)
    like_parameters(name, value, ref)
    shape(name, value, expected, meaning)
