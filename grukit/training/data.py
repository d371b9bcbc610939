"""Training data as fit, evaluate and predict take it: arrays, tensors, lists, pandas
frames, a torch ``Dataset``/``DataLoader`` or a Python generator of batches, validated
(``as_tensor``) and cut into mini-batches (``Batches``, an epoch of them at a time),
split among processes under torchrun."""

from __future__ import annotations

import math
import warnings
from collections import abc
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data.distributed import DistributedSampler

from .. import _checks
from . import placement


def as_tensor(name: str, value: Any) -> Tensor:
    """A validated tensor from an array, tensor or list: float64 becomes float32 (Keras'
    floatx), integers int64; empty data and NaN/Inf are errors that name the argument."""
    if hasattr(value, "to_numpy") and not isinstance(value, (Tensor, np.ndarray)):
        value = value.to_numpy()  # a pandas DataFrame or Series, as Keras takes them
    if isinstance(value, Tensor):
        t = value.detach()
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got dtype object (ragged lists? pad them)")
        arr = np.ascontiguousarray(value)
        t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())  # pandas' may be read-only
    elif isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise ValueError(f"{name} must be a rectangular list of numbers (pad ragged sequences): "
                             f"{exc}") from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must hold numbers, got {arr.dtype} (ragged lists? pad them)")
        t = torch.from_numpy(arr)
    else:
        raise TypeError(f"{name} must be a NumPy array, torch tensor, pandas DataFrame or list, got "
                        f"{_checks.describe(value)}")
    if t.dtype == torch.bool:
        t = t.float()
    elif t.dtype.is_floating_point:
        t = t.float() if t.dtype in (torch.float64, torch.float16, torch.bfloat16) else t
    elif t.dtype.is_complex:
        raise TypeError(f"{name} must be real numbers, got {t.dtype}")
    else:
        t = t.long()
    if t.dim() == 0 or t.shape[0] == 0:
        raise ValueError(f"{name} is empty: it must hold at least one sample, got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or Inf value(s): clean or impute them before training")
    return t


def check_class_weight(class_weight: Any) -> dict:
    """Keras' ``class_weight``, checked: {class index >= 0: weight >= 0}."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"class_weight must be a dict of class index -> weight, got "
                        f"{_checks.describe(class_weight)}")
    for k, v in class_weight.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise TypeError(f"class_weight's keys must be class indices (ints >= 0), got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not v >= 0:
            raise ValueError(f"class_weight[{k}] must be a number >= 0, got {v!r}")
    return class_weight


def class_sample_weights(y: Tensor, class_weight: Any) -> Tensor:
    """Keras' ``class_weight`` as sample weights: each target's class weight, one per sample
    ((N,) targets, (N, 1) 0/1 floats, or one-hot (N, C) rows by their argmax) or one per
    step ((N, T) class indices or (N, T, C) one-hot)."""
    check_class_weight(class_weight)
    labels = y
    if labels.dim() > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]  # (N, 1) or (N, T, 1): one label each
    elif labels.dim() > 1 and labels.is_floating_point():
        labels = labels.argmax(-1)  # one-hot rows (integer (N, T): a class index per step)
    labels = labels.round().long() if labels.is_floating_point() else labels.long()
    found = sorted(int(c) for c in torch.unique(labels))
    missing = [c for c in found if c not in class_weight]
    if missing:
        raise ValueError(f"class_weight has no weight for class {missing[0]} (the classes in y: {found})")
    table = torch.zeros(max(max(class_weight), found[-1]) + 1)
    for k, v in class_weight.items():
        table[int(k)] = float(v)
    return table[labels]


class Batches:
    """Mini-batches of (x, y, sample_weight) from tensors, a Dataset/DataLoader, or a Python
    generator (any iterator) of ready-made batches, as Keras takes them: tuples (x,), (x, y)
    or (x, y, sample_weight).

    ``steps``: how many batches one epoch (or one evaluation) draws (Keras' steps_per_epoch,
    validation_steps, steps); None: one pass, or a generator until it stops. With steps the
    training draws continue where the last epoch stopped, and a pass over arrays or a
    Dataset that ends within an epoch ends that epoch (the next starts a new pass, newly
    shuffled), as in Keras; ``restart`` starts the next draw afresh (evaluate's way). A
    generator is read once: ``ran_out`` says that it stopped before an epoch's steps."""

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool, need_y: bool, role: str = "",
                 shard: Optional[tuple[int, int]] = None, sample_weight: Any = None,
                 steps: Optional[int] = None, inputs: Any = 1) -> None:
        self.loader: Optional[Iterable] = None
        self.one_shot = False  # a generator or other iterator: read once, never restarted
        self.device = torch.device("cpu")  # where the batches go (fit, evaluate, predict set it)
        self.shard = shard  # (rank, world): this process's part of every batch (under torchrun)
        self.sw: Optional[Tensor] = None
        self.class_weight: Optional[dict] = None  # per-batch class weights (loaders and generators)
        self.need_y, self.role = need_y, role
        # a functional model's inputs: x is a tuple of that many tensors; given as their names (a
        # list), x may be a dict by the names too
        self.input_names = list(inputs) if isinstance(inputs, (list, tuple)) else None
        self.inputs = len(inputs) if isinstance(inputs, (list, tuple)) else inputs
        self.steps = steps
        self._pass: Optional[Iterator] = None  # the pass that the next draw continues
        self._peeked: list = []  # a generator's first batch, read to build the model
        self.ran_out = False
        if isinstance(x, (Dataset, DataLoader)) or _is_generator(x):
            kind = "a Dataset or DataLoader" if isinstance(x, (Dataset, DataLoader)) else "a generator"
            if sample_weight is not None:
                raise ValueError(f"sample_weight{role} must be None when x{role} is {kind} "
                                 "(yield (x, y, sample_weight) triples instead)")
            if y is not None:
                raise ValueError(f"y{role} must be None when x{role} is {kind} (it yields (x, y) pairs)")
            self.one_shot = _is_generator(x)
            streamed = isinstance(x, IterableDataset)  # it yields in its own order: no shuffle, as Keras'
            self.loader = x if isinstance(x, DataLoader) or self.one_shot else DataLoader(
                x, batch_size=batch_size, shuffle=shuffle and not streamed)
            self.x = self.y = None
            return
        self.x = self._x(x, "x" + role)
        self.y = None if y is None else as_tensor("y" + role, y)
        if need_y and self.y is None:
            raise ValueError(f"y{role} is required: fit and evaluate need targets")
        n = rows(self.x)
        if self.y is not None and self.y.shape[0] != n:
            raise ValueError(f"x{role} and y{role} must have the same number of samples, got "
                             f"{n} and {self.y.shape[0]}")
        if sample_weight is not None:
            self.sw = as_tensor("sample_weight" + role, sample_weight).float()
            if self.sw.dim() > 2 or self.sw.shape[0] != n:
                raise ValueError(f"sample_weight{role} must have shape ({n},) or "
                                 f"({n}, T): one weight per sample or per step, got "
                                 f"{tuple(self.sw.shape)}")
            if bool((self.sw < 0).any()):
                raise ValueError(f"sample_weight{role} must not be negative, got min {float(self.sw.min())}")
        self.batch_size, self.shuffle = batch_size, shuffle

    def _x(self, x: Any, name: str) -> Any:
        """x as a tensor, or for a model of several inputs a tuple of them, one per input,
        with as many samples each."""
        if isinstance(x, dict) and self.input_names is not None:
            x = by_name(x, self.input_names, name)
        if self.inputs == 1:
            if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (np.ndarray, Tensor)):
                x = x[0]  # [x]: a list of one array per input, as Keras takes it
            return as_tensor(name, x)
        if not isinstance(x, (list, tuple)) or len(x) != self.inputs:
            raise ValueError(f"{name} must be a list of {self.inputs} arrays, one per input of the model "
                             f"(in its inputs' order), got {_checks.describe(x)}")
        parts = tuple(as_tensor(f"{name}[{i}]", v) for i, v in enumerate(x))
        if len({t.shape[0] for t in parts}) > 1:
            raise ValueError(f"{name}'s arrays must have the same number of samples, got "
                             f"{[t.shape[0] for t in parts]}")
        return parts

    def distribute(self, shard: tuple[int, int], data: Any, batch_size: int, shuffle: bool) -> None:
        """Under torchrun: arrays and tensors are split batch by batch (``shard``); a Dataset
        gets a DistributedSampler and a local batch of batch_size / processes; a DataLoader
        must bring its own DistributedSampler."""
        self.shard = shard
        if self.loader is None:
            return
        if isinstance(data, DataLoader):
            if not isinstance(data.sampler, DistributedSampler):
                raise ValueError("under torchrun, a DataLoader must draw with a torch.utils.data."
                                 "DistributedSampler (or pass the Dataset itself, or arrays), got sampler "
                                 f"{type(data.sampler).__name__}")
            return
        rank, world = shard
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=shuffle)
        self.loader = DataLoader(data, batch_size=batch_size // world, sampler=sampler)

    def set_epoch(self, epoch: int) -> None:
        """A new shuffle per epoch for a DistributedSampler (the same on every process)."""
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)

    @property
    def num_batches(self) -> Optional[int]:
        """The batches of one epoch: ``steps`` if given, else those of one pass (None for a
        generator: unknown until it stops)."""
        if self.steps is not None:
            return self.steps
        if self.one_shot:
            return None
        if self.loader is not None:
            try:
                return len(self.loader)  # type: ignore[arg-type]
            except TypeError:  # an IterableDataset without a length: unknown until it stops
                return None
        return math.ceil(rows(self.x) / self.batch_size)

    def restart(self) -> None:
        """The next draw starts a new pass (a generator goes on where it is)."""
        self._pass = None

    def __iter__(self) -> Iterator[tuple[Tensor, Optional[Tensor], Optional[Tensor]]]:
        """One epoch's (x, y, sample_weight) batches on ``self.device``; y and sample_weight
        may be None."""
        for xb, yb, swb in self._epoch():
            yield (_move(xb, self.device), placement.move(yb, self.device),
                   placement.move(swb, self.device))

    def _epoch(self) -> Iterator[tuple[Tensor, Optional[Tensor], Optional[Tensor]]]:
        if self.steps is None and not self.one_shot:
            yield from self._drawn()  # one whole pass
            return
        taken = 0
        while self.steps is None or taken < self.steps:
            if self._pass is None:
                self._pass = self._drawn()
            try:
                batch = next(self._pass)
            except StopIteration:
                self._pass = None
                if self.one_shot:  # a generator that stopped: nothing more to come
                    self.ran_out = self.steps is not None or taken == 0
                    return
                if taken:  # the pass ended within the epoch: so does the epoch (Keras' way)
                    return
                continue  # the pass ended with the last epoch: a new one
            taken += 1
            yield batch

    def _drawn(self) -> Iterator[tuple[Tensor, Optional[Tensor], Optional[Tensor]]]:
        if self.loader is not None:
            items = self.loader if not self.one_shot else _chain(self._peeked, self.loader)
            for item in items:
                yield self._unpack(item)
            return
        n = rows(self.x)
        order = torch.randperm(n) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            idx = torch.arange(start, stop) if order is None else order[start:stop]
            if self.shard is not None:
                rank, world = self.shard
                if len(idx) < world:  # too few to give every process a sample: skipped by all
                    continue
                self.global_rows = len(idx)  # for fit's weighting of this process's gradient
                idx = torch.tensor_split(idx, world)[rank]
            yield (take(self.x, idx), None if self.y is None else self.y[idx],
                   None if self.sw is None else self.sw[idx])

    def _unpack(self, item: Any) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """One yielded batch, checked: (x,), (x, y) or (x, y, sample_weight) (a bare x when
        no targets are needed), with the class weights of its targets where fit asked."""
        source = "a generator" if self.one_shot else "a Dataset/DataLoader"
        if not isinstance(item, (tuple, list)):
            if self.need_y:
                raise ValueError(f"{source} for grukit must yield (x, y) pairs or (x, y, sample_weight) "
                                 f"triples, got {_checks.describe(item)}")
            item = (item,)
        if not 1 <= len(item) <= 3 or (self.need_y and len(item) == 1):
            raise ValueError(f"{source} for grukit must yield (x, y) pairs or (x, y, sample_weight) "
                             f"triples{'' if self.need_y else ' (or x alone)'}, got {len(item)} items")
        xb = self._x(item[0], "x batch")
        if self.shard is not None:  # a DistributedSampler gives every process as many rows
            self.global_rows = rows(xb) * self.shard[1]
        yb = as_tensor("y batch", item[1]) if len(item) > 1 and item[1] is not None else None
        sw = as_tensor("sample_weight batch", item[2]).float() if len(item) == 3 else None
        if self.class_weight is not None and yb is not None:
            weights = class_sample_weights(yb, self.class_weight)
            sw = weights if sw is None else weights_product(sw, weights)
        return xb, yb, sw

    def first_x(self) -> Tensor:
        """The first batch's first row (to build a model from), drawing nothing away."""
        if self.loader is None:
            return take(self.x, slice(0, 1))
        if self.one_shot:
            if not self._peeked:
                try:
                    self._peeked.append(next(self.loader))  # type: ignore[call-overload]
                except StopIteration:
                    raise ValueError(f"the generator given as x{self.role} yielded no batch") from None
            return take(self._unpack(self._peeked[0])[0], slice(0, 1))
        return take(next(self._drawn())[0], slice(0, 1))


def by_name(x: dict, names: list, what: str) -> list:
    """A dict of inputs by the model's Input names as the list in their order (Keras' way of
    passing inputs by name); a key no Input has is left out, with Keras' warning."""
    missing = [n for n in names if n not in x]
    if None in names or missing:
        raise ValueError(f"{what} as a dict needs a key for each of the model's inputs by its name "
                         f"(layers.Input(..., name=...)); the inputs are named {names}, got keys {sorted(x)}")
    extra = sorted(k for k in x if k not in names)
    if extra:
        warnings.warn(f"{what} has keys no input of the model is named, left out: {extra}", stacklevel=4)
    return [x[n] for n in names]


def rows(x: Any) -> int:
    """The samples of x: a tensor, or a tuple of them (a model of several inputs)."""
    return x[0].shape[0] if isinstance(x, tuple) else x.shape[0]


def take(x: Any, idx: Any) -> Any:
    """Rows idx (indices or a slice) of x: a tensor, or a tuple of them."""
    return tuple(t[idx] for t in x) if isinstance(x, tuple) else x[idx]


def _move(x: Any, device: torch.device) -> Any:
    return tuple(placement.move(t, device) for t in x) if isinstance(x, tuple) else placement.move(x, device)


def _is_generator(x: Any) -> bool:
    """A generator or another one-shot iterator of batches (not a tensor or array)."""
    return isinstance(x, abc.Iterator) and not isinstance(x, (Tensor, np.ndarray))


def _chain(peeked: list, rest: Any) -> Iterator:
    """The peeked items (taken out as they are yielded), then the rest of the iterator. A loop,
    not ``yield from``: closing this chain (when an epoch leaves it) must not close the user's
    generator, which the next epoch goes on reading."""
    while peeked:
        yield peeked.pop(0)
    for item in rest:
        yield item


def weights_product(sw: Tensor, weights: Tensor) -> Tensor:
    """sample_weight times class weights: (N,) is spread over the steps of (N, T)."""
    sw, weights = (sw.reshape(*sw.shape, *[1] * (weights.dim() - sw.dim())),
                   weights.reshape(*weights.shape, *[1] * (sw.dim() - weights.dim())))
    return sw * weights
