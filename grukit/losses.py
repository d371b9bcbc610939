"""Losses and metrics by their Keras names.

Predictions are probabilities for the cross-entropies (a sigmoid or softmax output
layer), as in Keras' default ``from_logits=False``. A loss given as a callable is
called Keras' way, ``loss(y_true, y_pred)``; a ``torch.nn`` loss module is called
torch's way, ``loss(y_pred, y_true)``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _checks

EPS = 1e-7

Fn = Callable[[Tensor, Tensor], Tensor]  # (y_true, y_pred) -> scalar


def _same_shape(y_true: Tensor, y_pred: Tensor) -> Tensor:
    if y_true.shape != y_pred.shape and y_true.numel() == y_pred.numel():
        y_true = y_true.reshape(y_pred.shape)  # (B,) targets for a (B, 1) output
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y must have the model's output shape {tuple(y_pred.shape)} per batch, "
                         f"got {tuple(y_true.shape)}")
    return y_true.to(y_pred.dtype)


def mean_squared_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return F.mse_loss(y_pred, _same_shape(y_true, y_pred))


def mean_absolute_error(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return F.l1_loss(y_pred, _same_shape(y_true, y_pred))


def binary_crossentropy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return F.binary_cross_entropy(y_pred.clamp(EPS, 1 - EPS), _same_shape(y_true, y_pred))


def categorical_crossentropy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape(y_true, y_pred)
    return -(y_true * y_pred.clamp(EPS, 1.0).log()).sum(-1).mean()


def sparse_categorical_crossentropy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    labels = y_true.reshape(y_pred.shape[:-1]).long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= y_pred.shape[-1]):
        raise ValueError(f"y must hold class indices in [0, {y_pred.shape[-1]}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    logp = y_pred.clamp(EPS, 1.0).log()
    return F.nll_loss(logp.reshape(-1, y_pred.shape[-1]), labels.reshape(-1))


LOSSES: dict[str, Fn] = {
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def get_loss(loss: Any) -> tuple[str, Fn]:
    """(name, fn(y_true, y_pred)) for a loss name, a torch loss module or a callable."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)} or a callable, got {loss!r}")
        return loss, LOSSES[loss]
    if isinstance(loss, nn.Module):
        return type(loss).__name__, lambda y_true, y_pred: loss(y_pred, y_true)
    if callable(loss):
        return getattr(loss, "__name__", "loss"), loss
    raise TypeError(f"loss must be a name or a callable, got {_checks.describe(loss)}")


# ------------------------------------------------------------------------- metrics

def binary_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    y_true = _same_shape(y_true, y_pred)
    return ((y_pred > 0.5) == (y_true > 0.5)).float().mean()


def categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return (y_pred.argmax(-1) == _same_shape(y_true, y_pred).argmax(-1)).float().mean()


def sparse_categorical_accuracy(y_true: Tensor, y_pred: Tensor) -> Tensor:
    return (y_pred.argmax(-1) == y_true.reshape(y_pred.shape[:-1]).long()).float().mean()


METRICS: dict[str, Fn] = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mse": mean_squared_error, "mae": mean_absolute_error,
}


def get_metric(metric: Any, loss_name: str) -> tuple[str, Fn]:
    """(name, fn). "accuracy"/"acc" picks the accuracy that fits the loss, as Keras does."""
    if isinstance(metric, str):
        if metric in ("accuracy", "acc"):
            fn = {"binary_crossentropy": binary_accuracy,
                  "sparse_categorical_crossentropy": sparse_categorical_accuracy}.get(
                      loss_name, categorical_accuracy)
            return metric, fn
        if metric not in METRICS:
            raise ValueError(f"metrics must name one of {sorted([*METRICS, 'accuracy'])} or be "
                             f"callables, got {metric!r}")
        return metric, METRICS[metric]
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    raise TypeError(f"metrics must hold names or callables, got {_checks.describe(metric)}")


def to_float(value: Tensor) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
