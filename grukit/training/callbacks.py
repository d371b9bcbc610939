"""Callbacks for ``fit``: every hook is a no-op unless overridden (Keras' names).

The fit loop calls, in order: on_train_begin, then per epoch on_epoch_begin,
on_train_batch_begin/end per batch, on_epoch_end(epoch, logs) with the epoch's
``loss``, metrics and their ``val_`` twins, and finally on_train_end. A callback
stops training by setting ``self.model.stop_training = True``.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from typing import Any, Optional

from . import checkpoint, distributed

Logs = dict[str, float]


class Callback:
    """Keras' callback hooks. ``set_params`` receives, before training, Keras' ``epochs``,
    ``steps`` and ``verbose`` and grukit's ``optimizer``, ``callbacks`` and ``history``
    (what a checkpoint's training state is made of). Callbacks whose
    ``writes_checkpoint`` is True run after all others at each epoch's end."""

    model: Any = None
    params: dict = {}
    writes_checkpoint = False

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: Optional[Logs] = None) -> None: ...
    def on_train_end(self, logs: Optional[Logs] = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: Optional[Logs] = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None: ...


class History(Callback):
    """``history.history``: a dict of per-epoch lists, as in Keras; ``plot(path)``."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path: str, title: str = "learning curves") -> str:
        """Write a PNG of every logged quantity per epoch (train and val_ together)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [k for k in self.history if not k.startswith("val_") and k not in ("lr", "learning_rate")]
        fig, axes = plt.subplots(1, max(1, len(names)), figsize=(5 * max(1, len(names)), 3.6),
                                 squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names, strict=False):
            ax.plot(epochs, self.history[name], label=name)
            if "val_" + name in self.history:
                ax.plot(epochs, self.history["val_" + name], label="val_" + name)
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.legend()
        fig.suptitle(title)
        fig.tight_layout()
        _atomic_savefig(fig, path)
        plt.close(fig)
        return path


def _atomic_savefig(fig: Any, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def _fmt(logs: Logs) -> str:
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


CLEAR_LINE = "\r\x1b[2K"  # back to the line's start and erase it (ANSI), before redrawing


class ProgbarLogger(Callback):
    """Keras-like progress: verbose=1 a live bar per epoch (on a terminal; a line per
    epoch elsewhere), verbose=2 one line per epoch, verbose=0 nothing."""

    def __init__(self, verbose: int = 1, stream: Any = None) -> None:
        self.verbose, self.stream = verbose, stream

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self.out = self.stream or sys.stdout
        self.live = self.verbose == 1 and getattr(self.out, "isatty", lambda: False)()

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self.epoch_start, self.last_draw, self.seen = time.perf_counter(), 0.0, 0
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.model.epochs}", file=self.out, flush=True)

    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        self.seen = batch + 1
        now = time.perf_counter()
        if not self.live or now - self.last_draw < 0.1:
            return
        self.last_draw = now
        total = self.model.steps_per_epoch  # None: a generator's, unknown until it stops
        done = 0 if total is None else int(30 * (batch + 1) / total)
        bar = f" [{'=' * done}{'.' * (30 - done)}]" if total else ""
        print(f"{CLEAR_LINE}{batch + 1}/{total or 'Unknown'}{bar} - {_fmt(logs or {})}",
              end="", file=self.out, flush=True)

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if not self.verbose:
            return
        took = time.perf_counter() - self.epoch_start
        prefix = CLEAR_LINE if self.live else ""  # the bar's line may be longer than this one
        print(f"{prefix}{self.seen}/{self.model.steps_per_epoch or self.seen} - {took:.1f}s - "
              f"{_fmt(logs or {})}", file=self.out, flush=True)


class _Monitor(Callback):
    """Watches one logged value: better means lower (or higher for accuracies)."""

    def __init__(self, monitor: str, mode: str, min_delta: float, patience: int = 0) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.sign, self.min_delta = monitor, (1 if mode == "min" else -1), abs(min_delta)
        self.patience, self.best, self.wait = patience, math.inf, 0

    def _update(self, logs: Optional[Logs]) -> Optional[str]:
        """None without a value; else "improved" (recorded as the best), "waiting", or
        "stalled" once ``patience`` epochs in a row passed without improvement (Keras' rule:
        with patience 1, the first epoch that does not improve; 0 acts as 1)."""
        value = self._value(logs)
        if value is None:
            return None
        if self._improved(value):
            self.best, self.wait = self.sign * value, 0
            return "improved"
        self.wait += 1
        return "stalled" if self.wait >= self.patience else "waiting"

    def _value(self, logs: Optional[Logs]) -> Optional[float]:
        value = (logs or {}).get(self.monitor)
        logs = logs or {}
        if value is None and self.monitor.startswith("val_") and logs.get(self.monitor[4:]) is not None:
            return None  # no validation data: nothing to monitor
        if value is None:
            raise ValueError(f"monitor {self.monitor!r} is not among the logged values {sorted(logs or {})}")
        return value

    def _improved(self, value: float, reference: Optional[float] = None) -> bool:
        """Better than the best so far (or than ``reference``, in the monitor's units) by min_delta."""
        best = self.best if reference is None else self.sign * reference
        return self.sign * value < best - self.min_delta

    def get_state(self) -> dict:
        """What a resumed fit needs to go on exactly (saved by ModelCheckpoint)."""
        return {"best": self.best if math.isfinite(self.best) else None, "wait": self.wait}

    def set_state(self, state: dict) -> None:
        self.best = math.inf if state["best"] is None else state["best"]
        self.wait = state["wait"]


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally
    restore the weights of the best epoch. As Keras': ``baseline`` (an epoch must beat it
    to count as an improvement), ``start_from_epoch`` (epochs before it are not watched)
    and ``verbose`` (print when it stops and restores)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False, verbose: int = 0,
                 baseline: Optional[float] = None, start_from_epoch: int = 0) -> None:
        super().__init__(monitor, mode, min_delta, patience)
        self.restore, self.verbose = restore_best_weights, int(verbose)
        if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, (int, float))):
            raise TypeError(f"baseline must be a number or None, got {baseline!r}")
        self.baseline = baseline
        if (isinstance(start_from_epoch, bool) or not isinstance(start_from_epoch, int)
                or start_from_epoch < 0):
            raise ValueError(f"start_from_epoch must be an int >= 0, got {start_from_epoch!r}")
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self.best, self.wait, self.best_state = math.inf, 0, None
        self.stopped_epoch, self.best_epoch = None, None

    def get_state(self) -> dict:
        return {**super().get_state(), "best_epoch": self.best_epoch}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.best_epoch = state.get("best_epoch")

    def get_tensors(self) -> dict:
        """The best epoch's weights, kept in a checkpoint so that a resumed fit restores them."""
        return dict(self.best_state or {})

    def set_tensors(self, tensors: dict) -> None:
        self.best_state = dict(tensors) or None

    def _snapshot(self, epoch: int) -> None:
        self.best_epoch = epoch
        if self.restore:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        # Keras' rule, step for step: patience counts the epochs since the last improvement that
        # also beat the baseline; it never stops on the first epoch
        value = self._value(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.best_epoch is None:
            self._snapshot(epoch)
        self.wait += 1
        if self._improved(value):
            self.best = self.sign * value
            self._snapshot(epoch)
            if self.baseline is None or self._improved(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.model.stop_training, self.stopped_epoch = True, epoch

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        if self.verbose and self.stopped_epoch is not None:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore and self.best_state is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_state)


class ModelCheckpoint(_Monitor):
    """Save the model (``model.save``, written atomically) after each epoch, or only
    when ``monitor`` improved with ``save_best_only``. ``{epoch}`` in the path is filled.

    The file also holds the training state (optimizer, random generators, callbacks,
    history, the epoch: training/checkpoint.py), so that ``fit(..., resume=path)`` goes
    on from it after a crash or a kill; ``gk.load`` reads it as a plain model file.
    """

    writes_checkpoint = True  # fit runs it after the other callbacks: the epoch is whole

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0, save_weights_only: bool = False) -> None:
        super().__init__(monitor, mode, 0.0)
        self.filepath, self.save_best_only = str(filepath), save_best_only
        self.verbose, self.save_weights_only = int(verbose), bool(save_weights_only)
        if self.save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError(f"filepath must end in .weights.h5 with save_weights_only=True (Keras 3's "
                             f"weights file, as Keras asks), got {self.filepath!r}")

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if not distributed.is_main():  # under torchrun, process 0 writes
            return
        path = self.filepath.format(epoch=epoch + 1, **(logs or {}))
        if self.save_best_only:
            value = self._value(logs)
            if value is None or not self._improved(value):
                if self.verbose and value is not None:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.sign * self.best:.5f}")
                return
            if self.verbose:
                before = self.sign * self.best
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {before:.5f} to {value:.5f}, "
                      f"saving model to {path}")
            self.best = self.sign * value
        elif self.verbose:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:  # Keras' weights file: no training state to resume from
            self.model.save_weights(path)
            return
        _save_with_state(self, path, epoch)


def _save_with_state(callback: Callback, path: str, epoch: int) -> None:
    """model.save(path) with the training state after ``epoch`` when inside fit (the
    optimizer, random generators, callbacks and history: fit(..., resume=path) goes on)."""
    p, state = callback.params, None
    if "optimizer" in p:
        state = checkpoint.capture(p["optimizer"], p["callbacks"], p["history"], epoch)
    callback.model.save(path, training=state)


class BackupAndRestore(Callback):
    """Keras' fault tolerance: after every epoch the model and its training state go to
    ``backup_dir`` (as ModelCheckpoint writes them); a ``fit`` that starts while a backup is
    there goes on from it, as ``fit(..., resume=path)`` would, so a script that was killed is
    simply run again. Once training ends (all epochs, or stopped by a callback) the backup
    is deleted, unless ``delete_checkpoint=False``. The backup is written each epoch
    (``save_freq="epoch"``, the only value taken)."""

    writes_checkpoint = True  # after the other callbacks: the epoch is whole

    def __init__(self, backup_dir: str, save_freq: str = "epoch", delete_checkpoint: bool = True) -> None:
        if save_freq != "epoch":
            raise ValueError(f"save_freq must be 'epoch' (grukit backs up after each epoch), got "
                             f"{save_freq!r}")
        if not isinstance(backup_dir, (str, os.PathLike)) or not str(backup_dir):
            raise TypeError(f"backup_dir must be a folder's path, got {backup_dir!r}")
        self.path = os.path.join(str(backup_dir), "backup.grukit")
        self.delete_checkpoint = bool(delete_checkpoint)

    def resume_path(self) -> Optional[str]:
        """The backup fit goes on from, when there is one."""
        return self.path if os.path.isfile(self.path) else None

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if distributed.is_main():
            _save_with_state(self, self.path, epoch)

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        if self.delete_checkpoint and distributed.is_main() and os.path.isfile(self.path):
            os.remove(self.path)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_delta: float = 1e-4, min_lr: float = 0.0, mode: str = "auto", verbose: int = 0,
                 cooldown: int = 0) -> None:
        super().__init__(monitor, mode, min_delta, patience)
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
            raise ValueError(f"cooldown must be an int >= 0, got {cooldown!r}")
        self.factor, self.min_lr, self.verbose, self.cooldown = factor, min_lr, int(verbose), cooldown
        self.cooling = 0  # epochs of cooldown left after a reduction (Keras' cooldown_counter)

    def get_state(self) -> dict:
        return {**super().get_state(), "cooling": self.cooling}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.cooling = state.get("cooling", 0)

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self.cooling > 0:  # as Keras: improvements still count, waiting does not
            self.cooling -= 1
            self.wait = 0
        if self._update(logs) == "stalled" and self.cooling == 0:
            reduced = False
            for group in self.model.optimizer.param_groups:
                new = max(group["lr"] * self.factor, self.min_lr)
                reduced = reduced or new < group["lr"]
                group["lr"] = new
            if self.verbose and reduced:
                print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                      f"{self.model.optimizer.param_groups[0]['lr']}.")
            self.wait, self.cooling = 0, self.cooldown


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch.

    ``schedule(epoch, lr) -> new lr`` as in Keras (``epoch`` counts from 0, ``lr`` is
    the current rate); or ``torch_scheduler``, a function of the optimizer returning a
    ``torch.optim.lr_scheduler.LRScheduler`` (e.g. ``lambda opt: StepLR(opt, 10, 0.5)``),
    stepped after every epoch. The rate is logged as ``learning_rate``; a
    ModelCheckpoint keeps the scheduler's state so that a resumed fit goes on with it.
    """

    def __init__(self, schedule: Any = None, verbose: int = 0, *, torch_scheduler: Any = None) -> None:
        if (schedule is None) == (torch_scheduler is None):
            raise ValueError("pass exactly one of schedule (a function (epoch, lr) -> lr) and "
                             "torch_scheduler (a function optimizer -> torch LRScheduler)")
        for name, fn in (("schedule", schedule), ("torch_scheduler", torch_scheduler)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
        self.schedule, self.make_scheduler, self.verbose = schedule, torch_scheduler, verbose
        self.scheduler: Any = None

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        if self.make_scheduler is not None:
            import torch

            self.scheduler = self.make_scheduler(self.model.optimizer)
            if not isinstance(self.scheduler, torch.optim.lr_scheduler.LRScheduler):
                raise TypeError(f"torch_scheduler must return a torch.optim.lr_scheduler.LRScheduler, got "
                                f"{type(self.scheduler).__name__}")

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self.schedule is None:
            return
        groups = self.model.optimizer.param_groups
        lr = self.schedule(epoch, float(groups[0]["lr"]))
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"schedule({epoch}, lr) must return a finite rate >= 0, got {lr!r}")
        for group in groups:
            group["lr"] = float(lr)
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if logs is not None:  # the rate this epoch ran with (the first scheduler logs it, before any step)
            logs.setdefault("learning_rate", float(self.model.optimizer.param_groups[0]["lr"]))
        if self.scheduler is not None:
            self.scheduler.step()

    def get_state(self) -> Optional[dict]:
        return None if self.scheduler is None else self.scheduler.state_dict()

    def set_state(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


class CSVLogger(Callback):
    """One CSV row per epoch: epoch, then every logged value."""

    def __init__(self, filename: str, separator: str = ",", append: bool = False) -> None:
        self.filename, self.separator, self.append = str(filename), separator, append

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        self.file = None
        if not distributed.is_main():  # under torchrun, process 0 writes
            return
        exists = self.append and os.path.exists(self.filename)
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = csv.writer(self.file, delimiter=self.separator)
        self.keys, self.header_done = None, exists

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if self.file is None:
            return
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if not self.header_done:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(logs.get(k, "") for k in self.keys)])
        self.file.flush()

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        if self.file is not None:
            self.file.close()


class TerminateOnNaN(Callback):
    """Stop as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training", file=sys.stderr)
            self.model.stop_training = True


class LambdaCallback(Callback):
    """Keras' LambdaCallback: functions for the hooks, as the text-generation tutorials write
    one (``LambdaCallback(on_epoch_end=sample_text)``): ``on_epoch_begin/on_epoch_end(epoch,
    logs)``, ``on_train_batch_begin/on_train_batch_end(batch, logs)`` (Keras 2's
    ``on_batch_begin/on_batch_end`` too), ``on_train_begin/on_train_end(logs)``."""

    HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_train_batch_begin",
             "on_train_batch_end")

    def __init__(self, **hooks: Any) -> None:
        aliases = {"on_batch_begin": "on_train_batch_begin", "on_batch_end": "on_train_batch_end"}
        for name, fn in hooks.items():
            hook = aliases.get(name, name)
            if hook not in self.HOOKS:
                raise TypeError(f"LambdaCallback() got an unexpected keyword argument {name!r} (hooks: "
                                f"{', '.join(self.HOOKS + tuple(aliases))})")
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be a function, got {type(fn).__name__} {fn!r}")
            if fn is not None:  # the instance's function stands in for the method; logs as Keras': a dict
                setattr(self, hook, _with_logs(fn, indexed="batch" in hook or "epoch" in hook))


def _with_logs(fn: Any, indexed: bool) -> Any:
    if indexed:
        return lambda index, logs=None: fn(index, {} if logs is None else logs)
    return lambda logs=None: fn({} if logs is None else logs)


class TensorBoard(Callback):
    """Keras' TensorBoard callback: per epoch, every logged value as a scalar ``epoch_<name>``
    (training values under ``log_dir/train``, ``val_`` ones under ``log_dir/validation``,
    as Keras lays them out) and the learning rate; with ``histogram_freq=k`` a histogram of
    every weight each k epochs. Needs the ``tensorboard`` package
    (``pip install grukit[tensorboard]``); view with ``tensorboard --logdir LOG_DIR``.
    Under torchrun, process 0 writes."""

    def __init__(self, log_dir: str = "logs", histogram_freq: int = 0) -> None:
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(f"histogram_freq must be an int >= 0, got {histogram_freq!r}")
        self.log_dir, self.histogram_freq = str(log_dir), histogram_freq
        self.writers: dict[str, Any] = {}

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        if not distributed.is_main():
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("callbacks.TensorBoard needs the tensorboard package: "
                              "pip install grukit[tensorboard] (or pip install tensorboard)") from exc
        self.writers = {part: SummaryWriter(os.path.join(self.log_dir, part))
                        for part in ("train", "validation")}

    def on_epoch_end(self, epoch: int, logs: Optional[Logs] = None) -> None:
        if not self.writers:
            return
        for name, value in (logs or {}).items():
            part, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            self.writers[part].add_scalar(f"epoch_{tag}", value, epoch)
        optimizer = self.params.get("optimizer") or getattr(self.model, "optimizer", None)
        if optimizer is not None:
            self.writers["train"].add_scalar("epoch_learning_rate", optimizer.param_groups[0]["lr"], epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            for name, weight in self.model.named_parameters():
                self.writers["train"].add_histogram(name, weight.detach().cpu(), epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs: Optional[Logs] = None) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
