"""Neataptic's workflow: ``architect.GRU(2, 4, 4, 4, 1)``, ``train``, ``activate``.

A thin face over ``gk.Sequential`` and its ``fit``: the training set is one
sequence, a list of ``{"input": [...], "output": [...]}`` dicts, one per time
step; the network is stateful GRU layers and a sigmoid output layer (Neataptic's
logistic output). ``activate`` runs one time step and carries the state;
``clear`` forgets it.
"""

from __future__ import annotations

import numbers
import time
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .. import _checks
from . import callbacks as cbks
from . import layers as L
from .loading import load as load_model
from .losses import get_loss
from .sequential import Sequential

COSTS = {"mse": "mse", "mae": "mae", "cross_entropy": "binary_crossentropy",
         "binary_crossentropy": "binary_crossentropy"}


class _StopAtError(cbks.Callback):
    """Neataptic's stopping rule and its ``log`` lines, as a callback of fit."""

    def __init__(self, error: float, log: int, clear: bool) -> None:
        self.error, self.log, self.clear = error, log, clear
        self.last, self.iterations = float("inf"), 0

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self.clear:  # each iteration starts from a zero state
            self.model.reset_states()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self.last, self.iterations = logs["loss"], epoch + 1
        if self.log and self.iterations % self.log == 0:
            print(f"iteration {self.iterations} error {self.last:.6g} rate "
                  f"{self.model.optimizer.param_groups[0]['lr']:.4g}")
        if self.last <= self.error:
            self.model.stop_training = True


class _RestartOnPlateau(cbks.Callback):
    """Start again from fresh weights when the error has stalled: small nets such as
    GRU(1, 1, 1) either solve a task within a few dozen iterations or sit on a
    plateau for thousands, so a restart inside the iteration budget is the cheap cure."""

    def __init__(self, patience: int = 100, min_improvement: float = 0.01) -> None:
        self.patience, self.min_improvement = patience, min_improvement
        self.best, self.since, self.restarts = float("inf"), 0, 0

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if logs["loss"] < self.best * (1 - self.min_improvement):
            self.best, self.since = logs["loss"], 0
            return
        self.since += 1
        if self.since >= self.patience and not self.model.stop_training:
            for module in self.model.modules():
                if module is not self.model and hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            self.model.optimizer.state.clear()
            self.model.reset_states()
            self.best, self.since, self.restarts = float("inf"), 0, self.restarts + 1


class _Schedule(cbks.Callback):
    def __init__(self, schedule: dict) -> None:
        if not callable(schedule.get("function")) or not isinstance(schedule.get("iterations"), int):
            raise TypeError("schedule must be {'function': callable(data), 'iterations': int}")
        self.fn, self.every = schedule["function"], schedule["iterations"]

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        if (epoch + 1) % self.every == 0:
            self.fn({"error": logs["loss"], "iteration": epoch + 1})


class Network:
    """What ``architect.GRU`` returns: ``train``, ``activate``, ``clear``, ``test``."""

    def __init__(self, sizes: Sequence[int], device: Any = "auto") -> None:
        self.sizes = [_checks.positive_int(f"sizes[{i}]", s) for i, s in enumerate(sizes)]
        if len(self.sizes) < 3:
            raise ValueError(f"architect.GRU needs input, at least one hidden and output sizes, "
                             f"got {list(sizes)}")
        hidden = [L.GRU(h, return_sequences=True, stateful=True) for h in self.sizes[1:-1]]
        self.model = Sequential([L.Input((None, self.sizes[0])), *hidden,
                                 L.Dense(self.sizes[-1], activation="sigmoid")], device=device)

    def _sequence(self, name: str, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(data, (list, tuple)) or not data:
            raise ValueError(f"{name} must be a non-empty list of {{'input': [...], 'output': [...]}} dicts")
        xs, ys = [], []
        for i, step in enumerate(data):
            if not isinstance(step, dict) or "input" not in step or "output" not in step:
                raise TypeError(f"{name}[{i}] must be a dict with 'input' and 'output', got {step!r}")
            x, y = np.asarray(step["input"], dtype=float), np.asarray(step["output"], dtype=float)
            if x.shape != (self.sizes[0],) or y.shape != (self.sizes[-1],):
                raise ValueError(f"{name}[{i}] must have {self.sizes[0]} inputs and {self.sizes[-1]} "
                                 f"outputs, got {x.size} and {y.size}")
            xs.append(x)
            ys.append(y)
        return (torch.tensor(np.stack(xs)[None], dtype=torch.float32),
                torch.tensor(np.stack(ys)[None], dtype=torch.float32))  # (1, T, in), (1, T, out)

    def train(self, data: Any, rate: float = 0.3, error: float = 0.05, iterations: int = 100_000,
              clear: bool = False, log: int = 0, cost: str = "mse", momentum: float = 0.0,
              optimizer: str = "adam", schedule: Optional[dict] = None, restarts: bool = True,
              shuffle: bool = False, batch_size: int = 1, **unknown: Any) -> dict:
        """Fit the one sequence until its error <= ``error`` or ``iterations`` passes.

        ``rate`` is the learning rate of ``optimizer`` ("adam", grukit's default, or
        "sgd", Neataptic's own rule, with ``momentum``). With ``restarts`` (the default)
        training starts again from fresh weights when the error has not improved by 1%
        in 100 iterations; the count of iterations runs on. Returns {"error",
        "iterations", "time", "restarts"}.
        """
        if unknown:
            raise TypeError(f"train got unknown options {sorted(unknown)}; known: rate, error, "
                            "iterations, clear, log, cost, momentum, optimizer, schedule, restarts")
        for name, value in (("rate", rate), ("error", error)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        iterations = _checks.positive_int("iterations", iterations)
        if shuffle:
            raise ValueError("shuffle must be False for a GRU network: the set is one sequence and "
                             "shuffling its steps would destroy the order it learns from")
        if batch_size != 1:
            raise ValueError(f"batch_size must be 1: the set is one sequence, got {batch_size!r}")
        log = int(log)
        if log < 0:
            raise ValueError(f"log must be >= 0, got {log}")
        cost_name = _checks.choice("cost", cost, tuple(COSTS))
        optimizer = _checks.choice("optimizer", optimizer, ("adam", "sgd"))
        x, y = self._sequence("data", data)
        if optimizer == "sgd":
            opt: Any = lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=momentum)  # noqa: E731
        else:
            opt = "adam"
        self.model.compile(opt, COSTS[cost_name], learning_rate=float(rate))
        stop = _StopAtError(float(error), log, bool(clear))
        restart = _RestartOnPlateau()
        extra = ([] if schedule is None else [_Schedule(schedule)]) + ([restart] if restarts else [])
        start = time.perf_counter()
        self.model.reset_states()
        self.model.fit(x, y, batch_size=1, epochs=iterations, shuffle=False, verbose=0,
                       callbacks=[stop, *extra])
        return {"error": float(stop.last), "iterations": stop.iterations,
                "time": time.perf_counter() - start, "restarts": restart.restarts}

    def activate(self, input: Sequence[float]) -> list[float]:
        """One time step: the outputs for ``input``; the state carries to the next call."""
        x = np.asarray(input, dtype=float)
        if x.shape != (self.sizes[0],):
            raise ValueError(f"input must have {self.sizes[0]} values, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("input contains NaN or Inf")
        self.model.eval()
        with torch.no_grad():
            out = self.model(torch.tensor(x[None, None], dtype=torch.float32, device=self.model.device))
        return out[0, 0].tolist()

    def clear(self) -> None:
        """Forget the state: the next activate starts from zeros."""
        self.model.reset_states()

    def save(self, path: str) -> None:
        """Write the network to one file (the model file of ``Sequential.save``, with the
        sizes); ``architect.load(path)`` reads it back. Neataptic's toJSON/fromJSON, as a file."""
        self.model.save(path, extra={"architect": self.sizes})

    def test(self, data: Any, cost: str = "mse") -> dict:
        """The error over a sequence run from a cleared state: {"error", "time"}."""
        x, y = self._sequence("data", data)
        start = time.perf_counter()
        self.clear()
        self.model.eval()
        with torch.no_grad():
            pred = self.model(x.to(self.model.device)).cpu()
        self.clear()
        _, fn = get_loss(COSTS[_checks.choice("cost", cost, tuple(COSTS))])
        return {"error": float(fn(y, pred)), "time": time.perf_counter() - start}


def load(path: str, device: Any = "auto") -> Network:
    """A network written by ``Network.save``: its weights and sizes (the state starts cleared)."""
    model = load_model(path, device=device)
    sizes = (getattr(model, "extra", None) or {}).get("architect")
    if not isinstance(sizes, list):
        raise ValueError(f"path {path!r} holds a model not written by an architect network's save "
                         "(gk.load reads it as a Sequential)")
    net = Network(sizes, device=device)
    net.model = model
    net.clear()
    return net


def GRU(*sizes: int, device: Any = "auto") -> Network:
    """A GRU network: ``GRU(inputs, hidden..., outputs)``, e.g. ``GRU(2, 4, 4, 4, 1)``;
    ``device`` as for Sequential ("auto": a GPU when there is one)."""
    return Network(sizes, device)
