"""Training data as fit, evaluate and predict take it: arrays, tensors, lists, or a torch
``Dataset``/``DataLoader``, validated (``as_tensor``) and cut into mini-batches
(``Batches``), split among processes under torchrun."""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from .. import _checks
from . import placement


def as_tensor(name: str, value: Any) -> Tensor:
    """A validated tensor from an array, tensor or list: float64 becomes float32 (Keras'
    floatx), integers int64; empty data and NaN/Inf are errors that name the argument."""
    if isinstance(value, Tensor):
        t = value.detach()
    elif isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got dtype object (ragged lists? pad them)")
        t = torch.from_numpy(np.ascontiguousarray(value))
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
        raise TypeError(f"{name} must be a NumPy array, torch tensor or list, got {_checks.describe(value)}")
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


def class_sample_weights(y: Tensor, class_weight: Any) -> Tensor:
    """Keras' ``class_weight`` as sample weights: each target's class weight, one per sample
    ((N,) targets, (N, 1) 0/1 floats, or one-hot (N, C) rows by their argmax) or one per
    step ((N, T) class indices or (N, T, C) one-hot)."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"class_weight must be a dict of class index -> weight, got "
                        f"{_checks.describe(class_weight)}")
    for k, v in class_weight.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise TypeError(f"class_weight's keys must be class indices (ints >= 0), got {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not v >= 0:
            raise ValueError(f"class_weight[{k}] must be a number >= 0, got {v!r}")
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
    """Mini-batches of (x, y) from tensors or a Dataset/DataLoader."""

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool, need_y: bool, role: str = "",
                 shard: Optional[tuple[int, int]] = None, sample_weight: Any = None) -> None:
        self.loader: Optional[Iterable] = None
        self.device = torch.device("cpu")  # where the batches go (fit, evaluate, predict set it)
        self.shard = shard  # (rank, world): this process's part of every batch (under torchrun)
        self.sw: Optional[Tensor] = None
        if isinstance(x, (Dataset, DataLoader)):
            if sample_weight is not None:
                raise ValueError(f"sample_weight{role} must be None when x{role} is a Dataset or DataLoader "
                                 "(yield (x, y, sample_weight) triples instead)")
            if y is not None:
                raise ValueError(f"y{role} must be None when x{role} is a Dataset or DataLoader "
                                 "(it yields (x, y) pairs)")
            self.loader = x if isinstance(x, DataLoader) else DataLoader(x, batch_size=batch_size,
                                                                        shuffle=shuffle)
            self.x = self.y = None
            return
        self.x = as_tensor("x" + role, x)
        self.y = None if y is None else as_tensor("y" + role, y)
        if need_y and self.y is None:
            raise ValueError(f"y{role} is required: fit and evaluate need targets")
        if self.y is not None and self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"x{role} and y{role} must have the same number of samples, got "
                             f"{self.x.shape[0]} and {self.y.shape[0]}")
        if sample_weight is not None:
            self.sw = as_tensor("sample_weight" + role, sample_weight).float()
            if self.sw.dim() > 2 or self.sw.shape[0] != self.x.shape[0]:
                raise ValueError(f"sample_weight{role} must have shape ({self.x.shape[0]},) or "
                                 f"({self.x.shape[0]}, T): one weight per sample or per step, got "
                                 f"{tuple(self.sw.shape)}")
            if bool((self.sw < 0).any()):
                raise ValueError(f"sample_weight{role} must not be negative, got min {float(self.sw.min())}")
        self.batch_size, self.shuffle = batch_size, shuffle

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

    def __len__(self) -> int:
        if self.loader is not None:
            return len(self.loader)  # type: ignore[arg-type]
        return math.ceil(self.x.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Optional[Tensor], Optional[Tensor]]]:
        """(x, y, sample_weight) batches on ``self.device``; y and sample_weight may be None."""
        for xb, yb, swb in self._drawn():
            yield (placement.move(xb, self.device), placement.move(yb, self.device),
                   placement.move(swb, self.device))

    def _drawn(self) -> Iterator[tuple[Tensor, Optional[Tensor], Optional[Tensor]]]:
        if self.loader is not None:
            for item in self.loader:
                if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
                    raise ValueError("a Dataset/DataLoader for grukit must yield (x, y) pairs or "
                                     "(x, y, sample_weight) triples")
                xb = as_tensor("x batch", item[0])
                if self.shard is not None:  # a DistributedSampler gives every process as many rows
                    self.global_rows = xb.shape[0] * self.shard[1]
                sw = as_tensor("sample_weight batch", item[2]).float() if len(item) == 3 else None
                yield xb, as_tensor("y batch", item[1]), sw
            return
        n = self.x.shape[0]
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
            yield (self.x[idx], None if self.y is None else self.y[idx],
                   None if self.sw is None else self.sw[idx])

    def first_x(self) -> Tensor:
        return self.x[:1] if self.loader is None else next(self._drawn())[0][:1]
