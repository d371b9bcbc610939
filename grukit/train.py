"""``grukit train``: forecast a real series with a GRU, next to a seasonal-naive baseline.

With no config the job forecasts the weekly Mauna Loa CO2 series shipped in the
package, one week ahead. A TOML config points it at a user's CSV; every field
has a default and an unknown field is an error that names it::

    [data]
    task = "forecast"         # or "classify": label whole sequences (see grukit/classify.py)
    path = "co2"              # "co2" (shipped) or a CSV file; classify: "japanese_vowels" or a CSV
    time_column = "date"
    target_columns = ["co2"]
    window = 52               # past steps the model sees
    horizon = 1               # how far ahead it forecasts
    season = 52               # the seasonal-naive baseline's lag
    sequence_column = "sequence"  # classify: the column naming each row's sequence
    label_column = "label"        # classify: the class of that sequence
    feature_columns = []          # classify: default every other column
    [split]
    val_fraction = 0.1        # in time order: train, then validation, then test
    test_fraction = 0.2
    [model]
    units = 32
    layers = 1
    dropout = 0.0
    reset_after = true
    [train]
    epochs = 60
    batch_size = 32
    learning_rate = 0.002
    patience = 8              # early stopping on the validation loss
    seed = 0
    [output]
    dir = ""                  # default: runs/train-<date>-<time>

Each window is taken relative to its last value and scaled by the spread of the
training part's changes (fitted on the training part only); the model forecasts
the change. So a trend that leaves the training range, as CO2's does, stays
within what the network has seen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import tomllib
from typing import Any, Optional

import numpy as np
import torch

from . import callbacks as cbks
from . import datasets, distributed
from . import layers as L
from .model import Sequential
from .seeding import set_seed


@dataclasses.dataclass
class DataConfig:
    path: str = "co2"
    time_column: str = "date"
    target_columns: list = dataclasses.field(default_factory=lambda: ["co2"])
    window: int = 52
    horizon: int = 1
    season: int = 52
    task: str = "forecast"
    sequence_column: str = "sequence"
    label_column: str = "label"
    feature_columns: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SplitConfig:
    val_fraction: float = 0.1
    test_fraction: float = 0.2


@dataclasses.dataclass
class ModelConfig:
    units: int = 32
    layers: int = 1
    dropout: float = 0.0
    reset_after: bool = True


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 0.002
    patience: int = 8
    seed: int = 0


@dataclasses.dataclass
class OutputConfig:
    dir: str = ""


@dataclasses.dataclass
class JobConfig:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)


def parse_config(text: str, source: str = "config") -> JobConfig:
    """A JobConfig from TOML text; unknown sections and fields, and wrong types, are errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source} is not valid TOML: {exc}") from None
    return from_dict(raw, source)


def from_dict(raw: dict, source: str = "config") -> JobConfig:
    """A JobConfig from {section: {field: value}} (parsed TOML, or a run folder's job.json)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source} must hold sections of fields, got {type(raw).__name__}")
    job = JobConfig()
    sections = {f.name: f for f in dataclasses.fields(JobConfig)}
    for name, table in raw.items():
        if name not in sections:
            raise ValueError(f"unknown section [{name}] in {source}; known: {sorted(sections)}")
        if not isinstance(table, dict):
            raise ValueError(f"{name} in {source} must be a [{name}] table")
        target = getattr(job, name)
        fields = {f.name: f for f in dataclasses.fields(target)}
        for key, value in table.items():
            if key not in fields:
                raise ValueError(f"unknown field {name}.{key} in {source}; known fields of [{name}]: "
                                 f"{sorted(fields)}")
            default = getattr(target, key)
            ok = (isinstance(value, bool) == isinstance(default, bool)) and (
                isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int)))
            if not ok:
                raise TypeError(f"{name}.{key} in {source} must be {type(default).__name__}, "
                                f"got {value!r}")
            setattr(target, key, float(value) if isinstance(default, float) else value)
    _check(job, source)
    return job


def _check(job: JobConfig, source: str) -> None:
    d, s = job.data, job.split
    for name, value in (("data.window", d.window), ("data.horizon", d.horizon), ("data.season", d.season),
                        ("model.units", job.model.units), ("model.layers", job.model.layers),
                        ("train.epochs", job.train.epochs), ("train.batch_size", job.train.batch_size)):
        if value <= 0:
            raise ValueError(f"{name} in {source} must be positive, got {value}")
    if d.task not in ("forecast", "classify"):
        raise ValueError(f"data.task in {source} must be 'forecast' or 'classify', got {d.task!r}")
    if not all(isinstance(c, str) for c in d.feature_columns):
        raise ValueError(f"data.feature_columns in {source} must be a list of column names")
    if not d.target_columns or not all(isinstance(c, str) for c in d.target_columns):
        raise ValueError(f"data.target_columns in {source} must be a non-empty list of column names")
    if not (0 < s.val_fraction < 1 and 0 < s.test_fraction < 1 and s.val_fraction + s.test_fraction < 0.9):
        raise ValueError(f"split fractions in {source} must be in (0, 1) and leave >= 10% for training, "
                         f"got val {s.val_fraction}, test {s.test_fraction}")


# ------------------------------------------------------------------------ the job

def windows(values: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X (N, window, C), the target (N, C) `horizon` steps after each window's end, and
    the index of each target in the series."""
    n = len(values) - window - horizon + 1
    if n <= 0:
        raise ValueError(f"the series has {len(values)} steps: shorter than one window plus the horizon "
                         f"({window} + {horizon}); lower data.window or use a longer series")
    idx = np.arange(window)[None, :] + np.arange(n)[:, None]
    target_at = np.arange(n) + window - 1 + horizon
    return values[idx], values[target_at], target_at


def _rmse_mae(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    err = pred - truth
    return {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean())}


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """Train, evaluate against the seasonal-naive baseline, write the outputs; returns metrics.

    ``resume``: the run folder's checkpoint.grukit (written after every epoch): training
    goes on from its last epoch, into the same folder unless ``job.output.dir`` says
    otherwise. Under ``torchrun`` every process trains its part of each batch and only
    process 0 prints and writes.
    """
    if resume is not None and not os.path.isfile(resume):
        raise FileNotFoundError(f"--resume {resume!r} is not a file")
    # every process draws the same shuffles, a resumed run repeats them; the CPU ops a job runs
    # are deterministic as they are, so torch's global deterministic switch stays as the caller set it
    set_seed(job.train.seed, deterministic=torch.are_deterministic_algorithms_enabled())
    if distributed.context(torch.device("cpu")) is not None and not distributed.is_main():
        log = _quiet
    if job.data.task == "classify":
        from . import classify

        return classify.run(job, log, resume)
    d, t = job.data, job.train
    if d.path == "co2":
        times, values = datasets.load_co2()
        source = "Mauna Loa weekly CO2 (shipped with grukit)"
    else:
        times, values = datasets.read_series(d.path, d.time_column or None, d.target_columns)
        source = d.path
    x, y, target_at = windows(values, d.window, d.horizon)
    n = len(x)
    n_test, n_val = int(n * job.split.test_fraction), int(n * job.split.val_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"{n} windows are too few to split into train, validation and test")
    last = x[:, -1, :]  # (N, C): each window's last value
    scale = (y[:n_train] - last[:n_train]).std(0) + 1e-8  # fitted on the training part only
    x_rel = ((x - last[:, None, :]) / scale).astype("float32")
    y_rel = ((y - last) / scale).astype("float32")
    parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
             "test": slice(n_train + n_val, n)}

    m = job.model
    stack = [L.GRU(m.units, return_sequences=i < m.layers - 1, dropout=m.dropout, reset_after=m.reset_after)
             for i in range(m.layers)]
    model = Sequential([*stack, L.Dense(len(d.target_columns))])
    model.compile("adam", "mse", learning_rate=t.learning_rate)
    out_dir = output_dir(job, resume)
    log(f"grukit train: {source}, {len(values)} steps, {n} windows of {d.window} -> "
        f"{n_train} train / {n_val} validation / {n_test} test (in time order); output in {out_dir}")
    start = time.perf_counter()
    history = fit(model, job, out_dir, resume, x_rel[parts["train"]], y_rel[parts["train"]],
                  (x_rel[parts["val"]], y_rel[parts["val"]]), log)
    train_seconds = time.perf_counter() - start

    test = parts["test"]
    pred = last[test] + model.predict(x_rel[test]) * scale
    truth = y[test]
    lag = target_at[test] - d.season
    if (lag < 0).any():
        raise ValueError(f"data.season={d.season} reaches before the series starts for test targets")
    baseline = values[lag]
    metrics = {
        "data": source, "window": d.window, "horizon": d.horizon, "season": d.season,
        "windows": {"train": n_train, "val": n_val, "test": n_test},
        "epochs_run": len(history.history["loss"]), "train_seconds": round(train_seconds, 2),
        "gru": _rmse_mae(pred, truth), "seasonal_naive": _rmse_mae(baseline, truth),
    }
    if not distributed.is_main():  # under torchrun, process 0 writes
        return {**metrics, "output_dir": out_dir}
    log(f"\ntest set ({n_test} windows, {times[target_at[test][0]]} .. {times[target_at[test][-1]]}):")
    log(f"  {'':<16}{'RMSE':>10}{'MAE':>10}")
    for name in ("gru", "seasonal_naive"):
        log(f"  {name:<16}{metrics[name]['rmse']:>10.4f}{metrics[name]['mae']:>10.4f}")

    job_info = {"kind": "forecast", "window": d.window, "horizon": d.horizon, "scale": scale.tolist(),
                "time_column": d.time_column if d.path != "co2" else "date",
                "target_columns": list(d.target_columns)}
    model.save(os.path.join(out_dir, "model.grukit"), extra=job_info)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    history.plot(os.path.join(out_dir, "learning_curves.png"), title="grukit train: learning curves")
    _plot_forecast(os.path.join(out_dir, "forecast.png"), [times[i] for i in target_at[test]], truth, pred,
                   baseline, d.target_columns)
    log(f"\nwrote {out_dir}/model.grukit, metrics.json, forecast.png, learning_curves.png "
        "(checkpoint.grukit: the last epoch, for --resume)")
    return {**metrics, "output_dir": out_dir}


def _quiet(*args: Any, **kwargs: Any) -> None:
    """The log of processes other than 0 under torchrun."""


def output_dir(job: JobConfig, resume: Optional[str]) -> str:
    """The run folder, made if new: job.output.dir, else the resumed checkpoint's folder, else
    runs/train-<date>-<time>. Under torchrun every process takes process 0's, and process 0
    writes the job there (job.json: what --resume reads when no config is given)."""
    out_dir = job.output.dir or (os.path.dirname(os.path.abspath(resume)) if resume else
                                 os.path.join("runs", time.strftime("train-%Y%m%d-%H%M%S")))
    out_dir = distributed.agree(out_dir)
    if distributed.is_main():
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "job.json"), "w") as f:
            json.dump(dataclasses.asdict(job), f, indent=2)
    return out_dir


def fit(model: Sequential, job: JobConfig, out_dir: str, resume: Optional[str], x: np.ndarray, y: np.ndarray,
        validation: tuple, log=print) -> Any:
    """The job's fit: early stopping on the validation loss (back to the best epoch's
    weights), and out_dir/checkpoint.grukit after every epoch, with the training state."""
    t = job.train
    callbacks = [cbks.EarlyStopping("val_loss", patience=t.patience, restore_best_weights=True),
                 cbks.ModelCheckpoint(os.path.join(out_dir, "checkpoint.grukit"), monitor="val_loss")]
    if resume is not None:
        log(f"resuming from {resume}")
    return model.fit(x, y, epochs=t.epochs, batch_size=t.batch_size, validation_data=validation,
                     callbacks=callbacks, verbose=1, resume=resume)


def _plot_forecast(path: str, times: list, truth: np.ndarray, pred: np.ndarray, baseline: np.ndarray,
                   names: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(10, 3.4 * len(names)), squeeze=False)
    steps = np.arange(len(times))
    for j, ax in enumerate(axes[:, 0]):
        ax.plot(steps, truth[:, j], label="truth", lw=1.2)
        ax.plot(steps, pred[:, j], label="GRU forecast", lw=1)
        ax.plot(steps, baseline[:, j], label="seasonal naive", lw=0.8, alpha=0.7)
        ticks = np.linspace(0, len(times) - 1, 6).astype(int)
        ax.set_xticks(ticks, [times[i] for i in ticks])
        ax.set_title(f"{names[j]}: test-set forecast")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_config(path: Optional[str], resume: Optional[str] = None) -> JobConfig:
    """The job of a TOML config; without one, the job of the run being resumed (job.json
    beside its checkpoint), else the default job."""
    if path is None:
        saved = os.path.join(os.path.dirname(os.path.abspath(resume)), "job.json") if resume else None
        if saved is None or not os.path.isfile(saved):
            return JobConfig()
        with open(saved, encoding="utf-8") as f:
            try:
                raw = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{saved} is not valid JSON: {exc}") from None
        return from_dict(raw, saved)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        return parse_config(f.read(), path)


def predict(model_path: str, input_path: str, output_path: Optional[str] = None, log=print) -> str:
    """Forecasts for every complete window of a CSV series (or, for a classifier, a label for
    every sequence of a long-format CSV), written to a CSV."""
    from .saving import load

    model = load(model_path)
    info = getattr(model, "extra", None) or {}
    if info.get("kind") == "classify":
        from . import classify

        return classify.predict(model, info, input_path, output_path, log)
    if info.get("kind") != "forecast":
        raise ValueError(f"model {model_path!r} was not written by `grukit train` (no job settings)")
    times, values = datasets.read_series(input_path, info["time_column"] or None, info["target_columns"])
    x, _, target_at = windows(np.concatenate([values, np.zeros((info["horizon"], values.shape[1]))]),
                              info["window"], info["horizon"])
    scale = np.array(info["scale"])
    last = x[:, -1, :]
    pred = last + model.predict(((x - last[:, None, :]) / scale).astype("float32")) * scale
    output_path = output_path or os.path.splitext(input_path)[0] + ".forecast.csv"
    with open(output_path, "w") as f:
        names = [f"{c}_forecast_{info['horizon']}_ahead" for c in info["target_columns"]]
        f.write(",".join(["window_end", *names]) + "\n")
        for i, row in enumerate(pred):
            end = target_at[i] - info["horizon"]
            f.write(",".join([times[end], *[f"{v:.6g}" for v in row]]) + "\n")
    log(f"wrote {len(pred)} forecasts to {output_path}")
    return output_path
