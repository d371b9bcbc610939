"""Losses and metrics by their Keras names.

Predictions are probabilities for the cross-entropies (a sigmoid or softmax output
layer), as in Keras' default ``from_logits=False``. A loss given as a callable is
called Keras' way, ``loss(y_true, y_pred)``; a ``torch.nn`` loss module is called
torch's way, ``loss(y_pred, y_true)``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from .. import _checks

EPS = 1e-7

Fn = Callable[[Tensor, Tensor], Tensor]  # (y_true, y_pred) -> values, one per sample or step


def _same_shape(y_true: Tensor, y_pred: Tensor) -> Tensor:
    if y_true.shape != y_pred.shape and y_true.numel() == y_pred.numel():
        y_true = y_true.reshape(y_pred.shape)  # (B,) targets for a (B, 1) output
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y must have the model's output shape {tuple(y_pred.shape)} per batch, "
                         f"got {tuple(y_true.shape)}")
    return y_true.to(y_pred.dtype)


# Each built-in loss and metric gives one value per sample, or per step for per-step
# outputs: Keras reduces the last (feature or class) axis only. A mask and sample
# weights then weigh those values as Keras does (``reduce_loss``, ``Mean``).

def _reduce_last(v: Tensor, y_pred: Tensor) -> Tensor:
    return v.mean(-1) if y_pred.dim() > 1 else v


def mean_squared_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return _reduce_last((y_pred - _same_shape(y_true, y_pred)).square(), y_pred)


def mean_absolute_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return _reduce_last((y_pred - _same_shape(y_true, y_pred)).abs(), y_pred)


def binary_crossentropy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape(y_true, y_pred)
    p = y_pred.clamp(EPS, 1 - EPS)
    return _reduce_last(-(y_true * p.log() + (1 - y_true) * (1 - p).log()), y_pred)


def categorical_crossentropy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape(y_true, y_pred)
    return -(y_true * y_pred.clamp(EPS, 1.0).log()).sum(-1)


def _labels(y_true: Tensor, y_pred: Tensor) -> Tensor:
    labels = y_true.reshape(y_pred.shape[:-1]).long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= y_pred.shape[-1]):
        raise ValueError(f"y must hold class indices in [0, {y_pred.shape[-1]}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels


def sparse_categorical_crossentropy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    logp = y_pred.clamp(EPS, 1.0).log()
    return -logp.gather(-1, _labels(y_true, y_pred)[..., None])[..., 0]


def mean_absolute_percentage_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape(y_true, y_pred)
    return _reduce_last(100 * ((y_true - y_pred) / y_true.abs().clamp(min=EPS)).abs(), y_pred)


def mean_squared_logarithmic_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape(y_true, y_pred)
    return _reduce_last((torch.log1p(y_pred.clamp(min=EPS)) - torch.log1p(y_true.clamp(min=EPS))).square(),
                        y_pred)


def huber(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Keras' Huber loss with delta 1: half the squared error within 1, then linear."""
    err = (y_pred - _same_shape(y_true, y_pred)).abs()
    return _reduce_last(torch.where(err <= 1.0, 0.5 * err.square(), err - 0.5), y_pred)


def log_cosh(y_true: Tensor, y_pred: Tensor) -> Tensor:
    x = y_pred - _same_shape(y_true, y_pred)
    return _reduce_last(x + torch.nn.functional.softplus(-2.0 * x) - math.log(2.0), y_pred)


LOSSES: dict[str, Fn] = {
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "mape": mean_absolute_percentage_error, "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "msle": mean_squared_logarithmic_error, "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "huber": huber, "log_cosh": log_cosh, "logcosh": log_cosh,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def keras_name(name: str) -> str:
    """A Keras class name as the function's name (``"MeanSquaredError"`` ->
    ``"mean_squared_error"``), as Keras' ``losses.get`` and ``metrics.get`` read both."""
    return name if name.islower() else re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _weights(values: Tensor, mask: Optional[Tensor], sample_weight: Optional[Tensor]) -> Optional[Tensor]:
    """Keras' weights for per-sample or per-step values: the sample weights, (B,) or (B, T),
    times the mask (B, T) of a per-step output; broadcast to the values' shape."""
    w = None if sample_weight is None else sample_weight.to(values.dtype)
    if mask is not None and tuple(mask.shape) == tuple(values.shape[:mask.dim()]):
        m = mask.to(values.dtype)
        w = m if w is None else w.reshape(*w.shape, *[1] * (m.dim() - w.dim())) * m
    if w is None:
        return None
    if w.dim() > values.dim():
        raise ValueError(f"sample_weight must have at most the loss values' rank {values.dim()} "
                         f"(shape {tuple(values.shape)}), got shape {tuple(w.shape)}")
    return w.reshape(*w.shape, *[1] * (values.dim() - w.dim())).expand_as(values)


def reduce_loss(values: Tensor, mask: Optional[Tensor] = None, sample_weight: Optional[Tensor] = None
                ) -> Tensor:
    """Keras' "sum_over_batch_size": sum(values * weights) / their count, where a mask
    counts only its valid entries (so masked steps neither add nor dilute)."""
    if values.dim() == 0:
        return values
    w = _weights(values, None, sample_weight)
    total = values if w is None else values * w
    if mask is not None and tuple(mask.shape) == tuple(values.shape[:mask.dim()]):
        m = mask.to(values.dtype).reshape(*mask.shape, *[1] * (values.dim() - mask.dim()))
        count = (m.expand_as(values)).sum()
        return (total * m).sum() / count.clamp(min=1)
    return total.sum() / values.numel()


class Loss:
    """A loss ``loss(y_true, y_pred, mask=None, sample_weight=None)`` -> a scalar.

    Built-ins and plain callables that return per-sample (or per-step) values are
    reduced as Keras reduces them (``reduce_loss``); a callable that returns a scalar
    and a torch loss module are used as they are (a mask or sample weights then
    cannot apply, and passing sample weights is an error)."""

    def __init__(self, name: str, fn: Fn, torch_module: bool = False) -> None:
        self.name, self.fn, self.torch_module = name, fn, torch_module

    def __call__(self, y_true: Tensor, y_pred: Tensor, mask: Optional[Tensor] = None,
                 sample_weight: Optional[Tensor] = None) -> Tensor:
        values = self.fn(y_pred, y_true) if self.torch_module else self.fn(y_true, y_pred)
        if not isinstance(values, Tensor) or values.dim() == 0:
            if sample_weight is not None:
                raise ValueError(f"sample_weight needs a loss that returns one value per sample; "
                                 f"{self.name} returned a scalar")
            return values
        return reduce_loss(values, mask, sample_weight)


def get_loss(loss: Any) -> tuple[str, Loss]:
    """(name, Loss) for a loss name, a torch loss module or a callable."""
    if isinstance(loss, str):
        if keras_name(loss) not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)} (or its Keras class name) or a callable, "
                             f"got {loss!r}")
        return loss, Loss(loss, LOSSES[keras_name(loss)])
    if isinstance(loss, nn.Module):
        return type(loss).__name__, Loss(type(loss).__name__, loss, torch_module=True)
    if callable(loss):
        name = getattr(loss, "__name__", "loss")
        return name, Loss(name, loss)
    raise TypeError(f"loss must be a name or a callable, got {_checks.describe(loss)}")


# ------------------------------------------------------------------------- metrics

def binary_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape(y_true, y_pred)
    return _reduce_last(((y_pred > 0.5) == (y_true > 0.5)).float(), y_pred)


def categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return (y_pred.argmax(-1) == _same_shape(y_true, y_pred).argmax(-1)).float()


def sparse_categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return (y_pred.argmax(-1) == y_true.reshape(y_pred.shape[:-1]).long()).float()


def root_mean_squared_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """The squared errors: their mean over the epoch is square-rooted at its end (ROOTED), as
    Keras' RootMeanSquaredError takes the root of the whole epoch's mean, not of each batch's."""
    return mean_squared_error(y_true, y_pred)


METRICS: dict[str, Fn] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    **{k: v for k, v in LOSSES.items() if "crossentropy" not in k},
    "root_mean_squared_error": root_mean_squared_error, "rmse": root_mean_squared_error,
}
ROOTED = (root_mean_squared_error,)  # metrics whose epoch value is the square root of the mean


def get_metric(metric: Any, loss_name: str) -> tuple[str, Fn]:
    """(name, fn). "accuracy"/"acc" picks the accuracy that fits the loss, as Keras does."""
    if isinstance(metric, str):
        if metric in ("accuracy", "acc"):
            fn = {"binary_crossentropy": binary_accuracy,
                  "sparse_categorical_crossentropy": sparse_categorical_accuracy}.get(
                      loss_name, categorical_accuracy)
            return metric, fn
        if keras_name(metric) not in METRICS:
            raise ValueError(f"metrics must name one of {sorted([*METRICS, 'accuracy'])} (or its Keras class "
                             f"name) or be callables, got {metric!r}")
        return metric, METRICS[keras_name(metric)]
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    raise TypeError(f"metrics must hold names or callables, got {_checks.describe(metric)}")


def mean_state(values: Tensor, rows: float, mask: Optional[Tensor] = None) -> tuple[float, float]:
    """One batch's (total, count) for Keras' ``Mean`` metric over per-sample or per-step
    values: the epoch's value is the sum of totals over the sum of counts, so masked
    steps count for nothing."""
    if values.dim() == 0:  # a callable that returns the batch's mean: weighed by its rows
        return float(values) * rows, float(rows)
    w = _weights(values, mask, None)
    if w is None:
        per_row = values.reshape(values.shape[0], -1).mean(1)
        return float(per_row.sum()), float(values.shape[0])
    inner = tuple(range(1, values.dim()))
    per_row = (values * w).mean(inner) if inner else values * w
    weight = w.mean(inner) if inner else w
    return float(per_row.sum()), float(weight.sum())


def to_float(value: Tensor) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
