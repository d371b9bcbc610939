"""Keras' data utilities, by their names (``gk.utils``), for the tutorials that call them:
``pad_sequences`` (token ids to one padded array), ``to_categorical`` (class indices to
one-hot rows) and ``timeseries_dataset_from_array`` (windows of a series and their targets,
in batches that ``fit`` takes). Keras itself is not needed; the results are Keras'."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .. import _checks


def pad_sequences(sequences: Any, maxlen: Optional[int] = None, dtype: Any = "int32", padding: str = "pre",
                  truncating: str = "pre", value: float = 0.0) -> np.ndarray:
    """Sequences of different lengths as one array (len(sequences), maxlen, ...): shorter ones
    padded with ``value``, longer ones cut, at the front ("pre", Keras' default) or the end
    ("post"); maxlen defaults to the longest sequence."""
    if not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences must be a list of sequences, got {_checks.describe(sequences)}")
    padding = _checks.choice("padding", padding, ("pre", "post"))
    truncating = _checks.choice("truncating", truncating, ("pre", "post"))
    if maxlen is not None:
        maxlen = _checks.positive_int("maxlen", maxlen)
    rows = [np.asarray(s) for s in sequences]
    for i, row in enumerate(rows):
        if row.ndim == 0:
            raise ValueError(f"sequences[{i}] must be a sequence, got the single value {row.item()!r}")
    sample_shape = next((row.shape[1:] for row in rows if len(row)), ())
    if maxlen is None:
        maxlen = max((len(row) for row in rows), default=0)
    out = np.full((len(rows), maxlen, *sample_shape), value, dtype=dtype)
    for i, row in enumerate(rows):
        if not len(row) or not maxlen:
            continue
        kept = row[-maxlen:] if truncating == "pre" else row[:maxlen]
        if kept.shape[1:] != sample_shape:
            raise ValueError(f"sequences[{i}] has steps of shape {kept.shape[1:]}, the others {sample_shape}")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, -len(kept):] = kept
    return out


def to_categorical(x: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """Class indices as one-hot rows (float64, as Keras'): shape x.shape + (num_classes,), a
    trailing axis of 1 dropped first; num_classes defaults to the largest index + 1."""
    labels = np.asarray(x)
    if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise ValueError("x must hold integer class indices, got fractional values")
    labels = labels.astype(np.int64)
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    flat = labels.reshape(-1)
    if flat.size and flat.min() < 0:
        raise ValueError(f"x must hold class indices >= 0, got {int(flat.min())}")
    if num_classes is None:
        num_classes = int(flat.max()) + 1 if flat.size else 0
    else:
        num_classes = _checks.positive_int("num_classes", num_classes)
        if flat.size and flat.max() >= num_classes:
            raise ValueError(f"x holds class {int(flat.max())}, beyond num_classes={num_classes}")
    out = np.zeros((flat.size, num_classes))
    out[np.arange(flat.size), flat] = 1
    return out.reshape(*shape, num_classes)


class _Windows(Dataset):
    """Window i of timeseries_dataset_from_array: (data[p : p + length * rate : rate], targets[p])."""

    def __init__(self, data: np.ndarray, targets: Optional[np.ndarray], starts: np.ndarray, length: int,
                 rate: int) -> None:
        self.data, self.targets, self.starts, self.length, self.rate = data, targets, starts, length, rate

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> Any:
        p = int(self.starts[i])
        window = torch.as_tensor(self.data[p:p + self.length * self.rate:self.rate])
        return window if self.targets is None else (window, torch.as_tensor(self.targets[p]))


def timeseries_dataset_from_array(data: Any, targets: Any, sequence_length: int, sequence_stride: int = 1,
                                  sampling_rate: int = 1, batch_size: Optional[int] = 128,
                                  shuffle: bool = False, seed: Optional[int] = None,
                                  start_index: Optional[int] = None, end_index: Optional[int] = None) -> Any:
    """Keras' sliding windows over a series: window i starts at p = start_index + i *
    sequence_stride and holds ``sequence_length`` steps, every ``sampling_rate``-th from p;
    its target is ``targets[p]`` (None: windows alone). Returns batches of (windows, targets)
    as a torch DataLoader that ``fit``, ``evaluate`` and ``predict`` take and that a new epoch
    iterates again (newly shuffled with ``shuffle``; ``seed`` fixes the orders); with
    ``batch_size=None`` the windows one by one (a torch Dataset). Keras' example: steps 0..98,
    sequence_length 10, sampling_rate 2, sequence_stride 3 give the windows [0 2 .. 18],
    [3 5 .. 21], ..., [78 80 .. 96]."""
    data = np.asarray(data)
    if data.ndim == 0 or len(data) == 0:
        raise ValueError(f"data must be an array of at least one step, got shape {data.shape}")
    sequence_length = _checks.positive_int("sequence_length", sequence_length)
    for name, value in (("sequence_stride", sequence_stride), ("sampling_rate", sampling_rate)):
        if _checks.positive_int(name, value) >= len(data):
            raise ValueError(f"{name} must be lower than the length of the data ({len(data)}), got {value}")
    start = 0 if start_index is None else int(start_index)
    end = len(data) if end_index is None else int(end_index)
    if not 0 <= start < len(data):
        raise ValueError(f"start_index must be in [0, {len(data)}), got {start_index}")
    if not start < end <= len(data) or (end_index is not None and end == len(data)):
        raise ValueError(f"end_index must be in ({start}, {len(data)}), got {end_index}")
    count = end - start - (sequence_length - 1) * sampling_rate
    target_array = None
    if targets is not None:
        target_array = np.asarray(targets)[start:end]
        count = min(count, len(target_array))
    if count <= 0:
        raise ValueError(f"no window of {sequence_length} steps every {sampling_rate} fits in the "
                         f"{end - start} steps from start_index {start}")
    starts = np.arange(0, count, sequence_stride)
    windows = _Windows(data[start:end], target_array, starts, sequence_length, sampling_rate)
    if batch_size is None:
        if shuffle:
            rng = np.random.default_rng(seed)
            windows.starts = rng.permutation(starts)
        return windows
    batch_size = _checks.positive_int("batch_size", batch_size)
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    return DataLoader(windows, batch_size=batch_size, shuffle=bool(shuffle), generator=generator)
