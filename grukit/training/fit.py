"""``Sequential.fit`` and ``evaluate``: the one training loop, in the pieces that have names.

``fit`` = ``prepare`` (validate the arguments, cut off the validation data) -> the
callbacks in Keras' order -> for each epoch ``train_epoch`` (each batch is one window,
or several with ``tbptt``: ``windows``) and ``evaluate`` on the validation data ->
``History``. ``Logs`` keeps an epoch's running values as Keras does: the loss weighed by
each batch's rows, each metric as a Mean over its values under the output's mask.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .. import _checks
from . import callbacks as cbks
from . import checkpoint, distributed, losses
from .data import (
    Batches,
    _is_generator,
    check_class_weight,
    class_sample_weights,
    rows,
    take,
    weights_product,
)


class Logs:
    """An epoch's running logs: a total and a count per name (Keras' Mean metrics)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        self.rooted: set[str] = set()  # names whose value is the square root of the mean (RMSE)
        self.batches = 0  # how many batches the epoch drew

    def _add(self, name: str, total: float, count: float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + total
        self.counts[name] = self.counts.get(name, 0.0) + count

    def add(self, model: Any, loss: Tensor, pred: Tensor, y: Tensor, rows: float,
            mask: Optional[Tensor]) -> None:
        """One batch: the loss weighed by its rows, each metric over its values under the
        output's mask; sample weights weigh the loss only (Keras' ``metrics=`` are unweighted)."""
        self._add("loss", losses.to_float(loss) * rows, rows)
        with torch.no_grad():
            for name, fn in model.metric_fns:
                self._add(name, *losses.mean_state(fn(y, pred), rows, mask))
                if fn in losses.ROOTED:
                    self.rooted.add(name)

    def over_processes(self) -> None:
        """Under torchrun: every process's logs become the sums over all processes."""
        keys = sorted(self.sums)
        totals = distributed.sum_over_processes([self.sums[k] for k in keys] + [self.counts[k] for k in keys])
        self.sums = dict(zip(keys, totals[:len(keys)], strict=True))
        self.counts = dict(zip(keys, totals[len(keys):], strict=True))

    def values(self) -> dict[str, float]:
        means = {k: v / max(self.counts[k], 1e-12) for k, v in self.sums.items()}
        return {k: math.sqrt(v) if k in self.rooted else v for k, v in means.items()}


def prepare(x: Any, y: Any, batch_size: int, shuffle: bool, validation_split: float, validation_data: Any,
            sample_weight: Any, class_weight: Any = None, steps_per_epoch: Optional[int] = None,
            validation_steps: Optional[int] = None, validation_batch_size: Optional[int] = None,
            inputs: int = 1) -> tuple[Batches, Optional[Batches]]:
    """The training batches, and the validation batches (validation_data, or the last
    ``validation_split`` of the samples, taken before shuffling as Keras does).
    ``class_weight`` weighs the training samples only (after the split), as in Keras."""
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    train = Batches(x, y, batch_size, shuffle, need_y=True, sample_weight=sample_weight,
                    steps=steps_per_epoch, inputs=inputs)
    val = None
    val_batch = validation_batch_size or batch_size
    if validation_data is not None:
        if isinstance(validation_data, (Dataset, DataLoader)) or _is_generator(validation_data):
            val = Batches(validation_data, None, val_batch, False, need_y=True, role=" (validation)",
                          steps=validation_steps, inputs=inputs)
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
            vx, vy, *vw = validation_data
            val = Batches(vx, vy, val_batch, False, need_y=True, role=" (validation)",
                          sample_weight=vw[0] if vw else None, steps=validation_steps, inputs=inputs)
        else:
            raise TypeError("validation_data must be a pair (x_val, y_val), a triple (x_val, y_val, "
                            "sample_weight_val), a Dataset/DataLoader or a generator of batches, got "
                            f"{_checks.describe(validation_data)}")
    elif validation_split:
        if train.loader is not None:
            raise ValueError("validation_split needs array or tensor data; pass validation_data instead")
        n = rows(train.x)
        n_val = int(n * validation_split)
        if n_val == 0 or n_val == n:
            raise ValueError(f"validation_split={validation_split} leaves no samples on one side of {n}")
        cut, sw = n - n_val, train.sw
        val = Batches(take(train.x, slice(cut, None)), train.y[cut:], val_batch, False, need_y=True,
                      sample_weight=None if sw is None else sw[cut:], steps=validation_steps, inputs=inputs)
        train = Batches(take(train.x, slice(None, cut)), train.y[:cut], batch_size, shuffle, need_y=True,
                        sample_weight=None if sw is None else sw[:cut], steps=steps_per_epoch, inputs=inputs)
    if class_weight is not None:
        if train.loader is not None:  # weighed batch by batch as they are drawn
            train.class_weight = check_class_weight(class_weight)
        else:
            weights = class_sample_weights(train.y, class_weight)
            train.sw = (weights if train.sw is None else weights_product(train.sw, weights)).float()
    return train, val


def _validation_epochs(freq: Any, first: int, epochs: int, val: Optional[Batches]) -> set[int]:
    """The epochs (counted from 0) after which fit validates: Keras' ``validation_freq``, an int
    (every freq-th epoch) or a list of epoch numbers (counted from 1); none without ``val``."""
    if isinstance(freq, (list, tuple, set)):
        listed = {_checks.positive_int("each epoch in validation_freq", e) - 1 for e in freq}
    else:
        every = _checks.positive_int("validation_freq", freq)
        listed = {e for e in range(epochs) if (e + 1) % every == 0}
    return {e for e in listed if first <= e < epochs} if val is not None else set()


def windows(model: Any, xb: Tensor, yb: Tensor, swb: Optional[Tensor], tbptt: Optional[int]) -> list[tuple]:
    """The (x, y, sample_weight) windows of one batch: the batch itself, or with ``tbptt``
    its cuts of tbptt steps (one stream per row; the stateful layers start at zero)."""
    if tbptt is None:
        return [(xb, yb, swb)]
    if xb.dim() < 2 or yb.dim() < 2 or yb.shape[1] != xb.shape[1]:
        raise ValueError(f"tbptt needs per-step targets: y batches of shape (B, T, ...) with "
                         f"x's T={xb.shape[1] if xb.dim() > 1 else '?'}, got {tuple(yb.shape)}")
    model.reset_states()
    per_step = swb is not None and swb.dim() == 2
    return [(xb[:, t:t + tbptt], yb[:, t:t + tbptt], swb[:, t:t + tbptt] if per_step else swb)
            for t in range(0, xb.shape[1], tbptt)]


def train_epoch(model: Any, runner: nn.Module, optimizer: torch.optim.Optimizer, train: Batches,
                callbacks: list, tbptt: Optional[int], shard: Optional[tuple[int, int]]) -> Logs:
    """One pass over the training batches, an optimizer step per window."""
    logs = Logs()
    for step, (xb, yb, swb) in enumerate(train):
        logs.batches = step + 1
        for cb in callbacks:
            cb.on_train_batch_begin(step)
        for xw, yw, sww in windows(model, xb, yb, swb, tbptt):
            optimizer.zero_grad(set_to_none=True)
            pred, out_mask = runner(xw, return_mask=True)
            loss = model.loss_fn(yw, pred, out_mask, sww)
            penalty = model.penalty()  # the regularizers' (Keras adds them to the loss it logs)
            if shard is None:
                (loss + penalty).backward()
            else:  # DDP averages gradients over processes; weigh each by its share of the rows
                (loss * (rows(xw) * shard[1] / train.global_rows) + penalty).backward()
            loss = loss.detach() + penalty
            optimizer.step()
            n = rows(xw) if tbptt is None else xw.shape[0] * xw.shape[1] / xb.shape[1]
            logs.add(model, loss, pred.detach(), yw, n, out_mask)
        batch_logs = logs.values()  # one dict that every callback sees (and may change)
        for cb in callbacks:
            cb.on_train_batch_end(step, batch_logs)
        if model.stop_training:
            break
    if shard is not None:  # every process logs the same, global values
        logs.over_processes()
    return logs


def evaluate(model: Any, batches: Batches) -> dict[str, float]:
    """The loss and metrics over batches (``steps`` of them, afresh, where given), in eval
    mode, without gradients; {} when a generator had no batch left."""
    model.eval()
    batches.restart()
    logs = Logs()
    with torch.no_grad():
        for xb, yb, swb in batches:
            pred, mask = model(xb, return_mask=True)
            logs.add(model, model.loss_fn(yb, pred, mask, swb) + model.penalty(), pred, yb, rows(xb), mask)
    return logs.values()


def _resume(model: Any, path: str, optimizer: torch.optim.Optimizer, callbacks: list, history: Any) -> int:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume={path!r} is not a file")
    weights, tensors, info = checkpoint.read(path)  # one read, no second model built
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"resume={path!r} holds another architecture than this model: {exc}") from None
    return checkpoint.restore(optimizer, callbacks, history, tensors, info)


def _callbacks(user: Optional[Sequence[cbks.Callback]], history: cbks.History, verbose: int) -> list:
    """Keras' order: the user's callbacks, then History (so that it records what they log)
    and the progress bar; callbacks that write checkpoints run last, so that the file
    holds the epoch whole (History included)."""
    user = list(user or [])
    for cb in user:
        if not isinstance(cb, cbks.Callback):
            raise TypeError("callbacks must be grukit.callbacks.Callback objects, got "
                            f"{_checks.describe(cb)}")
    writers = [cb for cb in user if cb.writes_checkpoint]
    return [*(cb for cb in user if not cb.writes_checkpoint), history, cbks.ProgbarLogger(verbose), *writers]


def fit(model: Any, x: Any, y: Any, *, batch_size: int, epochs: int, verbose: Union[int, str],
        callbacks: Optional[Sequence[cbks.Callback]], validation_split: float, validation_data: Any,
        shuffle: bool, initial_epoch: int, tbptt: Optional[int], resume: Optional[str],
        sample_weight: Any, class_weight: Any = None, steps_per_epoch: Optional[int] = None,
        validation_steps: Optional[int] = None, validation_batch_size: Optional[int] = None,
        validation_freq: Any = 1) -> cbks.History:
    """Sequential.fit (its docstring says what each argument does)."""
    batch_size = _checks.batch_size(batch_size)
    if tbptt is not None:
        tbptt = _checks.positive_int("tbptt", tbptt)
        if model.input_count() > 1:
            raise ValueError("tbptt cuts one input into windows: a model of several inputs cannot take it")
        if not any(getattr(layer, "stateful", False) for layer in model.modules()):
            raise ValueError("tbptt needs a stateful GRU layer (layers.GRU(units, stateful=True, "
                             "return_sequences=True)) to carry the state from one window to the next")
    epochs = _checks.positive_int("epochs", epochs)
    verbose = 1 if verbose == "auto" else verbose
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, int) or initial_epoch < 0:
        raise ValueError(f"initial_epoch must be an int >= 0, got {initial_epoch!r}")
    train, val = prepare(x, y, batch_size, shuffle, validation_split, validation_data, sample_weight,
                         class_weight, _checks.optional_positive_int("steps_per_epoch", steps_per_epoch),
                         _checks.optional_positive_int("validation_steps", validation_steps),
                         _checks.optional_positive_int("validation_batch_size", validation_batch_size),
                         model._inputs())
    validate_after = _validation_epochs(validation_freq, initial_epoch, epochs, val)
    if val is not None and val.one_shot and val.steps is None and len(validate_after) > 1 and resume is None:
        raise ValueError(f"validation_data is a generator, which can be read once, and fit would validate "
                         f"{len(validate_after)} times: give validation_steps (the batches of each "
                         "validation, drawn on from the generator) or pass arrays or a Dataset")
    model.build_from(train.first_x())  # and placed on its device
    device = model.device
    for batches in (train, val):
        if batches is not None:
            batches.device = device
    optimizer = model._make_optimizer()
    shard = distributed.context(device)
    runner: nn.Module = model
    if shard is not None:  # launched by torchrun: PyTorch's data parallelism
        if batch_size % shard[1]:
            raise ValueError(f"batch_size is the global batch under torchrun and must divide among "
                             f"{shard[1]} processes, got {batch_size}")
        if train.one_shot:
            raise ValueError("under torchrun, x cannot be a generator (every process would draw the same "
                             "batches): pass arrays or a Dataset, which are split among the processes")
        train.distribute(shard, x, batch_size, shuffle)
        runner = nn.parallel.DistributedDataParallel(  # one GPU per process
            model, device_ids=[device.index] if device.type == "cuda" else None)
        if shard[0] != 0:
            verbose = 0

    history = cbks.History()
    cb_list = _callbacks(callbacks, history, verbose)
    model.epochs, model.steps_per_epoch, model.stop_training = epochs, train.num_batches, False
    params = {"epochs": epochs, "steps": train.num_batches, "verbose": verbose,
              "optimizer": optimizer, "callbacks": cb_list, "history": history}
    for cb in cb_list:
        cb.set_model(model)
        cb.set_params(params)
        cb.on_train_begin()
    if resume is None:  # a BackupAndRestore's backup: a run that was killed goes on
        backups = [cb.resume_path() for cb in cb_list if isinstance(cb, cbks.BackupAndRestore)]
        resume = next((path for path in backups if path), None)
    if resume is not None:
        initial_epoch = _resume(model, str(resume), optimizer, cb_list, history)
        validate_after = _validation_epochs(validation_freq, initial_epoch, epochs, val)
    for epoch in range(initial_epoch, epochs):
        model.train()
        train.set_epoch(epoch)
        for cb in cb_list:
            cb.on_epoch_begin(epoch)
        epoch_logs = train_epoch(model, runner, optimizer, train, cb_list, tbptt, shard)
        if epoch_logs.batches == 0 and train.one_shot:  # a generator with nothing left: no epoch to report
            _ran_out("the training data", epoch, epoch_logs.batches)
            break
        logs = epoch_logs.values()
        if epoch in validate_after:
            found = evaluate(model, val)
            if not found or val.ran_out:
                _ran_out("validation_data", epoch, None)
                model.stop_training = True
            logs.update({f"val_{k}": v for k, v in found.items()})
        if train.ran_out:
            _ran_out("the training data", epoch, epoch_logs.batches)
            model.stop_training = True
        for cb in cb_list:
            cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for cb in cb_list:
        cb.on_train_end()
    for key in ("optimizer", "callbacks", "history"):  # the training state is fit's alone: a model
        params.pop(key)  # that keeps its History must still copy and pickle
    model.history = history
    return history


def _ran_out(what: str, epoch: int, batches: Optional[int]) -> None:
    """Keras' warning when a generator stops before fit is done; training stops with it."""
    drew = "" if batches is None else f" after {batches} batch{'es' if batches != 1 else ''}"
    warnings.warn(f"{what} ran out{drew} in epoch {epoch + 1}; training stops here. A generator must "
                  "yield at least steps_per_epoch * epochs batches (validation_steps per validation): "
                  "make it endless, give fewer steps, or pass arrays or a Dataset", RuntimeWarning,
                  stacklevel=4)
