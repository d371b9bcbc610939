"""``gk.Sequential``: Keras' compile / fit / evaluate / predict over torch modules.

Inputs may be NumPy arrays, torch tensors, Python lists, or a torch ``Dataset`` /
``DataLoader`` yielding ``(x, y)`` pairs. The one training loop here also serves
``gk.architect`` networks.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from . import _checks, distributed, losses
from . import callbacks as cbks
from . import layers as L

OPTIMIZERS = {  # name -> (class, Keras' default learning rate, extra arguments)
    "adam": (torch.optim.Adam, 1e-3, {"eps": 1e-7}),
    "adamw": (torch.optim.AdamW, 1e-3, {"eps": 1e-7}),
    "sgd": (torch.optim.SGD, 1e-2, {}),
    "rmsprop": (torch.optim.RMSprop, 1e-3, {"eps": 1e-7, "alpha": 0.9}),
    "adagrad": (torch.optim.Adagrad, 1e-3, {}),
}


# ------------------------------------------------------------------------- data

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


class _Batches:
    """Mini-batches of (x, y) from tensors or a Dataset/DataLoader."""

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool, need_y: bool, role: str = "",
                 shard: Optional[tuple[int, int]] = None, sample_weight: Any = None) -> None:
        self.loader: Optional[Iterable] = None
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
        from torch.utils.data.distributed import DistributedSampler

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
        """(x, y, sample_weight) batches; y and sample_weight may be None."""
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
        return self.x[:1] if self.loader is None else next(iter(self))[0][:1]


# ------------------------------------------------------------------------ model

class Sequential(nn.Module):
    """A stack of grukit layers with Keras' training API.

    Example::

        >>> import numpy as np, grukit as gk
        >>> from grukit import layers
        >>> model = gk.Sequential([layers.GRU(8), layers.Dense(1)])
        >>> model.compile(optimizer="adam", loss="mse")
        >>> x, y = np.random.rand(16, 5, 3), np.random.rand(16, 1)
        >>> history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        >>> sorted(history.history)
        ['loss']
        >>> model.predict(x).shape
        (16, 1)
    """

    def __init__(self, layers: Optional[Sequence[L.Layer]] = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.compiled = False
        self.stop_training = False
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.input_spec: Optional[tuple[list[int], str]] = None  # one sample's shape, dtype
        self.compute_dtype: Optional[torch.dtype] = None  # set by gk.quantize(model, torch.bfloat16)
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: L.Layer) -> None:
        if not isinstance(layer, L.Layer):
            raise TypeError(f"layers must be grukit.layers layers, got {_checks.describe(layer)}")
        if isinstance(layer, L.Input) and len(self.layers):
            raise ValueError("layers.Input must come first")
        self.layers.append(layer)
        first = self.layers[0]
        if isinstance(first, L.Input):  # declared input: build as layers arrive, as Keras does
            shape = [1 if s is None else s for s in first.shape]
            dtype = torch.long if first.dtype.startswith("int") else torch.float32
            self.input_spec = None
            self.build_from(torch.zeros((1, *shape), dtype=dtype))

    # ------------------------------------------------------------------ calling

    def _takes_ids(self) -> bool:
        """Whether the first layer reads token ids (an Embedding); others read float features."""
        return isinstance(next((la for la in self.layers if not isinstance(la, L.Input)), None), L.Embedding)

    def call_with_mask(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        return self.forward(x, mask)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, return_mask: bool = False) -> Any:
        """The model's output for x; with ``return_mask``, (output, its mask): the mask of a
        per-step output ((B, T) bool, from Embedding(mask_zero) or Masking), which fit and
        evaluate apply to the loss and metrics as Keras does, or None."""
        if not x.dtype.is_floating_point and not self._takes_ids():
            x = x.float()  # integer features (0/1 flags, counts) are numbers to a GRU, as in Keras
        low = self.compute_dtype  # float inputs in, float32 outputs out, as Keras' mixed precision
        if low is not None and x.dtype.is_floating_point:
            x = x.to(low)
        for layer in self.layers:
            x, mask = layer(x, mask)
        if low is not None and isinstance(x, Tensor) and x.dtype == low:
            x = x.float()
        return (x, mask) if return_mask else x

    def build_from(self, x: Tensor) -> None:
        """Create every layer's weights from one sample batch (as Keras does on first call)."""
        if self.input_spec is None:
            with torch.no_grad():
                was = self.training
                self.eval()
                self.call_with_mask(x[:1])
                self.train(was)
            self.reset_states()  # the build pass's state is not a real call's: stateful layers start at zeros
            ids = not x.dtype.is_floating_point and self._takes_ids()
            self.input_spec = (list(x.shape[1:]), "int64" if ids else "float32")

    def reset_states(self) -> None:
        for layer in self.layers:
            layer.reset_states()

    reset_state = reset_states  # Keras 3's name

    # ------------------------------------------------------------------ compile

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Optional[Sequence[Any]] = None,
                learning_rate: Optional[float] = None) -> None:
        """optimizer: a name (adam, adamw, sgd, rmsprop, adagrad; Keras' default learning
        rates unless ``learning_rate``), a torch optimizer class, or a function of the
        parameters returning an optimizer. loss: a name, a torch loss module, or a
        callable ``loss(y_true, y_pred)``. metrics: names (``accuracy``...) or callables."""
        if loss is None:
            raise ValueError("loss is required, e.g. loss='mse' or loss='binary_crossentropy'")
        if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, a torch optimizer class "
                             f"or a function of the parameters, got {optimizer!r}")
        if not isinstance(optimizer, str) and not callable(optimizer) and not isinstance(
                optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a name, class or function, got {_checks.describe(optimizer)}")
        if learning_rate is not None and (isinstance(learning_rate, bool) or not isinstance(
                learning_rate, numbers.Real) or not learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        if metrics is not None and (isinstance(metrics, str) or not isinstance(metrics, (list, tuple))):
            raise TypeError(f"metrics must be a list, e.g. ['accuracy'], got {metrics!r}")
        self.loss_name, self.loss_fn = losses.get_loss(loss)
        self.metric_fns = [losses.get_metric(m, self.loss_name) for m in metrics or []]
        self.optimizer_spec, self.learning_rate = optimizer, learning_rate
        self.optimizer = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
        self.compile_config = {
            "optimizer": optimizer.lower() if isinstance(optimizer, str) else None,
            "learning_rate": learning_rate, "loss": loss if isinstance(loss, str) else None,
            "metrics": [m for m in metrics or [] if isinstance(m, str)],
        }
        self.compiled = True

    def _make_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            spec, params = self.optimizer_spec, [p for p in self.parameters() if p.requires_grad]
            if isinstance(spec, str):
                cls, lr, extra = OPTIMIZERS[spec.lower()]
                self.optimizer = cls(params, lr=self.learning_rate or lr, **extra)
            else:
                kwargs = {} if self.learning_rate is None else {"lr": self.learning_rate}
                self.optimizer = spec(params, **kwargs)
            if not isinstance(self.optimizer, torch.optim.Optimizer):
                raise TypeError(f"optimizer must make a torch.optim.Optimizer, got "
                                f"{_checks.describe(self.optimizer)}")
        return self.optimizer

    def _require_compiled(self, what: str) -> None:
        if not getattr(self, "compiled", False):
            raise ValueError(f"call model.compile(optimizer=..., loss=...) before model.{what}()")

    # ---------------------------------------------------------------- training

    def fit(self, x: Any = None, y: Any = None, batch_size: int = 32, epochs: int = 1,
            verbose: Union[int, str] = "auto", callbacks: Optional[Sequence[cbks.Callback]] = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            initial_epoch: int = 0, tbptt: Optional[int] = None,
            resume: Optional[str] = None, sample_weight: Any = None) -> cbks.History:
        """Train for ``epochs`` passes over (x, y); returns a History (``.history``).

        ``tbptt=k``: truncated backpropagation through time for long streams. Each
        batch (B, T, F) with per-step targets (B, T, ...) is cut into windows of k steps,
        an optimizer step per window; the model's stateful GRU layers carry their state
        from one window to the next (gradients stop at window edges) and start each
        batch from zeros. Needs a stateful GRU layer and per-step targets.

        ``sample_weight``: (N,) per sample or (N, T) per step of a per-step output, as
        Keras weighs them; a per-step output's mask (from Embedding(mask_zero) or
        Masking) leaves padded steps out of the loss and metrics, as in Keras.

        ``resume=path``: a file written by ``callbacks.ModelCheckpoint``; the weights,
        optimizer, random generators, callbacks' state and history are restored and
        training goes on with the epoch after the one saved (call fit with the same data,
        settings and callbacks; with ``gk.set_seed`` the end result is the same as
        without the interruption).
        """
        self._require_compiled("fit")
        batch_size = _checks.positive_int("batch_size", batch_size)
        if tbptt is not None:
            tbptt = _checks.positive_int("tbptt", tbptt)
            if not any(getattr(layer, "stateful", False) for layer in self.modules()):
                raise ValueError("tbptt needs a stateful GRU layer (layers.GRU(units, stateful=True, "
                                 "return_sequences=True)) to carry the state from one window to the next")
        epochs = _checks.positive_int("epochs", epochs)
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        verbose = 1 if verbose == "auto" else verbose
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        train = _Batches(x, y, batch_size, shuffle, need_y=True, sample_weight=sample_weight)
        val = None
        if validation_data is not None:
            if isinstance(validation_data, (Dataset, DataLoader)):
                val = _Batches(validation_data, None, batch_size, False, need_y=True, role=" (validation)")
            elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
                vx, vy, *vw = validation_data
                val = _Batches(vx, vy, batch_size, False, need_y=True, role=" (validation)",
                               sample_weight=vw[0] if vw else None)
            else:
                raise TypeError("validation_data must be a pair (x_val, y_val), a triple (x_val, y_val, "
                                "sample_weight_val) or a Dataset/DataLoader")
        elif validation_split:
            if train.loader is not None:
                raise ValueError("validation_split needs array or tensor data; pass validation_data instead")
            n_val = int(train.x.shape[0] * validation_split)
            if n_val == 0 or n_val == train.x.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no samples on one side of "
                                 f"{train.x.shape[0]}")
            cut = train.x.shape[0] - n_val  # Keras takes the last samples, before shuffling
            sw = train.sw
            val = _Batches(train.x[cut:], train.y[cut:], batch_size, False, need_y=True,
                           sample_weight=None if sw is None else sw[cut:])
            train = _Batches(train.x[:cut], train.y[:cut], batch_size, shuffle, need_y=True,
                             sample_weight=None if sw is None else sw[:cut])
        self.build_from(train.first_x())
        optimizer = self._make_optimizer()
        shard = distributed.context(next(self.parameters()).device)
        runner: nn.Module = self
        if shard is not None:  # launched by torchrun: PyTorch's data parallelism
            if batch_size % shard[1]:
                raise ValueError(f"batch_size is the global batch under torchrun and must divide among "
                                 f"{shard[1]} processes, got {batch_size}")
            train.distribute(shard, x, batch_size, shuffle)
            runner = nn.parallel.DistributedDataParallel(self)
            if shard[0] != 0:
                verbose = 0

        history = cbks.History()
        cb_list = [*(callbacks or []), history, cbks.ProgbarLogger(verbose)]  # History sees what they log
        for cb in callbacks or []:
            if not isinstance(cb, cbks.Callback):
                raise TypeError(f"callbacks must be grukit.callbacks.Callback objects, got "
                                f"{_checks.describe(cb)}")
        self.epochs, self.steps_per_epoch, self.stop_training = epochs, len(train), False
        for cb in cb_list:
            cb.set_model(self)
            cb.on_train_begin()
            if isinstance(cb, cbks.ModelCheckpoint):
                cb.training = (optimizer, cb_list, history)
        if resume is not None:
            initial_epoch = self._resume(str(resume), optimizer, cb_list, history)
        for epoch in range(initial_epoch, epochs):
            self.train()
            train.set_epoch(epoch)
            for cb in cb_list:
                cb.on_epoch_begin(epoch)
            sums: dict[str, float] = {}
            counts: dict[str, float] = {}
            for step, (xb, yb, swb) in enumerate(train):
                for cb in cb_list:
                    cb.on_train_batch_begin(step)
                if tbptt is None:
                    windows = [(xb, yb, swb)]
                else:  # one stream per row, cut in time; the state starts each batch at zero
                    if xb.dim() < 2 or yb.dim() < 2 or yb.shape[1] != xb.shape[1]:
                        raise ValueError(f"tbptt needs per-step targets: y batches of shape (B, T, ...) with "
                                         f"x's T={xb.shape[1] if xb.dim() > 1 else '?'}, got "
                                         f"{tuple(yb.shape)}")
                    self.reset_states()
                    windows = [(xb[:, t:t + tbptt], yb[:, t:t + tbptt],
                                None if swb is None or swb.dim() == 1 else swb[:, t:t + tbptt])
                               for t in range(0, xb.shape[1], tbptt)]
                    if swb is not None and swb.dim() == 1:
                        windows = [(xw, yw, swb) for xw, yw, _ in windows]
                for xw, yw, sww in windows:
                    optimizer.zero_grad(set_to_none=True)
                    pred, out_mask = runner(xw, return_mask=True)
                    loss = self.loss_fn(yw, pred, out_mask, sww)
                    if shard is None:
                        loss.backward()
                    else:  # DDP averages gradients over processes; weigh each by its share of the rows
                        (loss * (xw.shape[0] * shard[1] / train.global_rows)).backward()
                    optimizer.step()
                    n = xw.shape[0] if tbptt is None else xw.shape[0] * xw.shape[1] / xb.shape[1]
                    self._accumulate(sums, counts, loss, pred.detach(), yw, n, out_mask)
                logs = {k: v / max(counts[k], 1e-12) for k, v in sums.items()}
                for cb in cb_list:
                    cb.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if shard is not None:  # every process logs the same, global values
                keys = sorted(sums)
                totals = distributed.sum_over_processes([sums[k] for k in keys] + [counts[k] for k in keys])
                sums = dict(zip(keys, totals[:len(keys)], strict=True))
                counts = dict(zip(keys, totals[len(keys):], strict=True))
            logs = {k: v / max(counts[k], 1e-12) for k, v in sums.items()}
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate(val).items()})
            for cb in cb_list:
                cb.on_epoch_end(epoch, logs)
            for cb in cb_list:
                cb.on_epoch_complete(epoch, logs)
            if self.stop_training:
                break
        for cb in cb_list:
            cb.on_train_end()
        self.history = history
        return history

    def _resume(self, path: str, optimizer: torch.optim.Optimizer, cb_list: list, history: Any) -> int:
        import os

        from . import resume

        if not os.path.isfile(path):
            raise FileNotFoundError(f"resume={path!r} is not a file")
        weights, tensors, info = resume.read(path)  # one read, no second model built
        try:
            self.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"resume={path!r} holds another architecture than this model: {exc}") from None
        return resume.restore(optimizer, cb_list, history, tensors, info)

    def _accumulate(self, sums: dict[str, float], counts: dict[str, float], loss: Tensor, pred: Tensor,
                    yb: Tensor, n: float, mask: Optional[Tensor]) -> None:
        """Add one batch to the epoch's logs as Keras does: the loss weighed by the batch's
        rows, each metric as a Mean over its values under the output's mask; sample weights
        weigh the loss only (Keras' ``metrics=`` are unweighted)."""
        sums["loss"] = sums.get("loss", 0.0) + losses.to_float(loss) * n
        counts["loss"] = counts.get("loss", 0.0) + n
        with torch.no_grad():
            for name, fn in self.metric_fns:
                total, count = losses.mean_state(fn(yb, pred), n, mask)
                sums[name] = sums.get(name, 0.0) + total
                counts[name] = counts.get(name, 0.0) + count

    def _evaluate(self, batches: _Batches) -> dict[str, float]:
        self.eval()
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        with torch.no_grad():
            for xb, yb, swb in batches:
                pred, mask = self.forward(xb, return_mask=True)
                self._accumulate(sums, counts, self.loss_fn(yb, pred, mask, swb), pred, yb, xb.shape[0], mask)
        return {k: v / max(counts[k], 1e-12) for k, v in sums.items()}

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int = 32, verbose: int = 0,
                 sample_weight: Any = None) -> Union[float, list[float]]:
        """The loss, or [loss, *metrics] when metrics were compiled (Keras' order); masks and
        sample weights count as in fit."""
        self._require_compiled("evaluate")
        batches = _Batches(x, y, _checks.positive_int("batch_size", batch_size), False, need_y=True,
                           sample_weight=sample_weight)
        self.build_from(batches.first_x())
        logs = self._evaluate(batches)
        if verbose:
            print(" - ".join(f"{k}: {v:.4g}" for k, v in logs.items()))
        values = [logs["loss"], *(logs[name] for name, _ in self.metric_fns)]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        """Model outputs for x, as a NumPy array (batched; eval mode, no gradients)."""
        batches = _Batches(x, None, _checks.positive_int("batch_size", batch_size), False, need_y=False)
        self.build_from(batches.first_x())
        self.eval()
        with torch.no_grad():
            outs = [self.call_with_mask(xb) for xb, _, _ in batches]
        return torch.cat(outs).numpy()

    # ----------------------------------------------------------------- saving

    def get_config(self) -> dict[str, Any]:
        return {"layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers],
                "input_spec": None if self.input_spec is None else
                {"shape": self.input_spec[0], "dtype": self.input_spec[1]}}

    def save(self, path: str, extra: Optional[dict] = None, training: Optional[tuple] = None) -> None:
        """One file: safetensors weights with the JSON config in its header, written
        atomically. ``gk.load(path)`` reads it back without executing any code; a
        JSON-able ``extra`` dict comes back as ``model.extra``. ``training`` is for
        ModelCheckpoint: the state that ``fit(..., resume=path)`` goes on from."""
        from . import saving

        saving.save_model(self, path, extra, training)

    def summary(self) -> str:
        lines = [f"{'layer':<24}{'output':<10}{'params':>10}"]
        for layer in self.layers:
            n = sum(p.numel() for p in layer.parameters())
            lines.append(f"{type(layer).__name__:<24}{'':<10}{n:>10,}")
        lines.append(f"total params: {sum(p.numel() for p in self.parameters()):,}")
        text = "\n".join(lines)
        print(text)
        return text
