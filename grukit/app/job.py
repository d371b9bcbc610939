"""``grukit train``'s jobs: their config, and the skeleton every job shares.

With no config the job forecasts the weekly Mauna Loa CO2 series shipped in the
package, one week ahead. A TOML config points it at a user's CSV; every field
has a default and an unknown field is an error that names it::

    [data]
    task = "forecast"         # or "classify" (classify.py), "text" (text.py), "anomaly" (anomaly.py)
    path = "co2"              # "co2" (shipped) or a CSV file; classify: "japanese_vowels" or a CSV
    time_column = "date"
    target_columns = []       # the columns to model (empty: every column but the time column)
    window = 0                # past steps the model sees (0: two seasons, 10 to 52, <= a third of the series)
    horizon = 1               # it forecasts every step 1..horizon after each window
    season = 0                # the season's length in steps (0: from the time stamps or the data)
    sequence_column = "sequence"  # classify: the column naming each row's sequence
    label_column = "label"        # classify, text: the class; anomaly: 0/1 labels, for the report only
    feature_columns = []          # classify: default every other column
    text_column = "text"          # text: the column holding each text
    vocabulary = 20000            # text: the most frequent tokens of the training texts kept
    max_tokens = 200              # text: the last tokens of each text the model reads
    threshold_quantile = 0.99     # anomaly: flag scores above this quantile of the validation part's
    scoring = "forecast"          # anomaly: "forecast" (next-value error) or "autoencoder" (window rebuilt)
    smoothing = 8                 # anomaly: a step's score is the mean error of the last 8 steps
    [split]
    val_fraction = 0.1        # in time order: train, then validation, then test
    test_fraction = 0.2
    train_steps = 0           # anomaly: the training part's length in steps (0: from the fractions)
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

The skeleton (``train.run``): seed every generator, quiet the processes other than 0
under torchrun, make the run folder and write job.json there (``output_dir``), build
the GRU stack the [model] section describes (``gru_stack``), and fit with early
stopping and a checkpoint after every epoch (``fit``). The jobs (forecast.py,
classify.py) read their data, fit, and report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import tomllib
from typing import Any, Optional

import numpy as np

from .. import datasets
from ..training import callbacks as cbks
from ..training import checkpoint, distributed
from ..training import layers as L
from ..training.sequential import Sequential


@dataclasses.dataclass
class DataConfig:
    path: str = "co2"
    time_column: str = "date"
    target_columns: list = dataclasses.field(default_factory=list)
    window: int = 0
    horizon: int = 1
    season: int = 0
    task: str = "forecast"
    sequence_column: str = "sequence"
    label_column: str = "label"
    feature_columns: list = dataclasses.field(default_factory=list)
    text_column: str = "text"
    vocabulary: int = 20000
    max_tokens: int = 200
    threshold_quantile: float = 0.99
    scoring: str = "forecast"
    smoothing: int = 8


@dataclasses.dataclass
class SplitConfig:
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    train_steps: int = 0


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
    tensorboard: bool = False
    device: str = "auto"


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


# What each field means: `grukit train --print-config` writes them as a commented template.
HELP = {
    "data": {
        "task": '"forecast" (the next values), "classify" (a label per sequence), "text" or "anomaly"',
        "path": '"co2" (shipped), a CSV file; classify: "japanese_vowels" or a long-format CSV; text: '
                '"reviews", "tweets" or a CSV; anomaly: "ucr135", a CSV or a UCR anomaly archive file '
                '(<n>_UCR_Anomaly_<name>_<train end>_<begin>_<end>.txt)',
        "time_column": "forecast, anomaly: the CSV's time column, increasing row by row (\"\" for none)",
        "target_columns": "forecast, anomaly: the columns to model (empty: every column of the CSV but "
                          "the time column and anomaly's label column)",
        "window": "forecast, anomaly: past steps the model sees (0: forecast: two seasons, 10 to 52, at "
                  "most a third of the series, shorter (3 at least) where that leaves fewer than 3 training "
                  "windows; anomaly: 52)",
        "horizon": "forecast: it forecasts every step 1..horizon after each window",
        "season": "forecast: the season's length in steps (seasonal naive, Holt-Winters, ARIMA); 0: from "
                  "the time stamps' spacing (months 12, quarters 4, weeks 52 (a year: "
                  "52.18 weeks in ARIMA's Fourier terms), days 7, business days 5, hours 24) or, "
                  "without them, the autocorrelation",
        "sequence_column": "classify: the column naming each row's sequence",
        "label_column": "classify, text: the class; anomaly: 0/1 labels if the CSV has them (report only)",
        "feature_columns": "classify: the input columns (empty: every other column)",
        "text_column": "text: the column holding each text",
        "vocabulary": "text: the most frequent tokens (words, symbols) of the training texts kept "
                      "(the rest: one id)",
        "max_tokens": "text: the last tokens of each text the model reads",
        "threshold_quantile": "anomaly: flag steps whose score (and, smoothed, own error) is above this "
                              "quantile of the validation part's",
        "scoring": 'anomaly: "forecast" (the error forecasting each next value) or "autoencoder" '
                   "(the error rebuilding the window ending at each step from one code)",
        "smoothing": "anomaly: the GRU's score at a step is the mean of the errors of the last this many "
                     "steps (1: each step's own error)",
    },
    "split": {
        "val_fraction": "validation share (forecast: in time order, after training, one window at least; "
                        "with a horizon h, the h - 1 windows after it are left out, so that no validation "
                        "target is a test target)",
        "test_fraction": "test share (forecast: the last part of the series, one window at least)",
        "train_steps": "anomaly: the training part is the first this many steps, the validation part the "
                       "next val_fraction of the series, the test part the rest (0: the fractions; a UCR "
                       "archive file's name gives it)",
    },
    "model": {
        "units": "GRU units per layer",
        "layers": "stacked GRU layers",
        "dropout": "input dropout of each GRU layer, in training",
        "reset_after": "true: torch's and Keras' GRU; false: Cho et al. 2014",
    },
    "train": {
        "epochs": "at most this many passes over the training part",
        "batch_size": "samples per step",
        "learning_rate": "Adam's learning rate",
        "patience": "early stopping: epochs without a better validation loss that training goes on "
                    "through (the next one stops it)",
        "seed": "seeds every generator (same seed, same run)",
        "tensorboard": "write TensorBoard logs to the run folder's tensorboard/ (needs tensorboard)",
        "device": '"auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N"',
    },
    "output": {"dir": 'run folder ("": runs/train-<date>-<time>)'},
}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list)):
        return json.dumps(value)  # JSON strings and lists of strings are TOML too
    return repr(value)


def template() -> str:
    """Every field of a job config with its default and what it means, as TOML that
    parse_config reads back to the default job."""
    lines = ["# grukit train: the job config. Every field is optional; these are the defaults."]
    for section in dataclasses.fields(JobConfig):
        lines.append(f"\n[{section.name}]")
        values = getattr(JobConfig(), section.name)
        for field in dataclasses.fields(values):
            text = f"{field.name} = {_toml(getattr(values, field.name))}"
            lines.append(f"{text:<34}# {HELP[section.name][field.name]}")
    return "\n".join(lines) + "\n"


def parse_config(text: str, source: str = "config") -> JobConfig:
    """A JobConfig from TOML text; unknown sections and fields, and wrong types, are errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = ""
        if source.lower().endswith((".csv", ".tsv", ".txt")):  # a data file given as the config
            hint = (f"; grukit train takes a TOML job config, not the data: write one that names it, "
                    f"e.g. [data] path = {os.path.basename(source)!r} (grukit train --print-config shows "
                    "every field)")
        raise ValueError(f"{source} is not valid TOML: {exc}{hint}") from None
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
    for name, value in (("data.window", d.window), ("data.season", d.season)):
        if value < 0:
            raise ValueError(f"{name} in {source} must be >= 0 (0: chosen from the data), got {value}")
    for name, value in (("data.horizon", d.horizon), ("data.vocabulary", d.vocabulary),
                        ("data.max_tokens", d.max_tokens), ("model.units", job.model.units),
                        ("model.layers", job.model.layers),
                        ("train.epochs", job.train.epochs), ("train.batch_size", job.train.batch_size)):
        if value <= 0:
            raise ValueError(f"{name} in {source} must be positive, got {value}")
    if d.task not in ("forecast", "classify", "text", "anomaly"):
        raise ValueError(f"data.task in {source} must be 'forecast', 'classify', 'text' or 'anomaly', "
                         f"got {d.task!r}")
    if d.scoring not in ("forecast", "autoencoder"):
        raise ValueError(f"data.scoring in {source} must be 'forecast' or 'autoencoder', got {d.scoring!r}")
    if isinstance(d.smoothing, bool) or not isinstance(d.smoothing, int) or d.smoothing < 1:
        raise ValueError(f"data.smoothing in {source} must be a positive int, got {d.smoothing!r}")
    if not 0 < d.threshold_quantile < 1:
        raise ValueError(f"data.threshold_quantile in {source} must be in (0, 1), got {d.threshold_quantile}")
    if d.vocabulary < 3:
        raise ValueError(f"data.vocabulary in {source} must be at least 3 (padding, unknown, one word), "
                         f"got {d.vocabulary}")
    if not all(isinstance(c, str) for c in d.feature_columns):
        raise ValueError(f"data.feature_columns in {source} must be a list of column names")
    if not all(isinstance(c, str) and c for c in d.target_columns):
        raise ValueError(f"data.target_columns in {source} must be a list of column names, got "
                         f"{d.target_columns!r}")
    if isinstance(s.train_steps, bool) or not isinstance(s.train_steps, int) or s.train_steps < 0:
        raise ValueError(f"split.train_steps in {source} must be an int >= 0, got {s.train_steps!r}")
    if s.train_steps and d.task != "anomaly":
        raise ValueError(f"split.train_steps in {source} is for task = 'anomaly', not {d.task!r}")
    if not (0 < s.val_fraction < 1 and 0 < s.test_fraction < 1 and s.val_fraction + s.test_fraction < 0.9):
        raise ValueError(f"split fractions in {source} must be in (0, 1) and leave >= 10% for training, "
                         f"got val {s.val_fraction}, test {s.test_fraction}")


def target_columns(path: str, time_column: str, given: list, exclude: tuple = (),
                   header: Optional[list] = None) -> list[str]:
    """The columns a forecast or anomaly job models: the config's ``given`` target_columns, or,
    when it is empty, every column of the CSV (its ``header``, read when not given) but the time
    column and ``exclude``."""
    if given:
        return list(given)
    if header is None:
        header, _ = datasets.read_csv(path, [], header_only=True)
    columns = [c for c in header if c != time_column and c not in exclude]
    if not columns:
        raise ValueError(f"{path!r} has no column to model besides {[time_column, *exclude]}: its columns "
                         f"are {header}")
    return columns


def read_series(path: str, time_column: str, target_columns: list) -> tuple[list[str], np.ndarray]:
    """datasets.read_series for a job: a column missing from the CSV is an error that says which
    config field names it and what to write there; a cell that is not a number says to set
    target_columns to the columns of numbers (a text column is among every column when it was
    left empty)."""
    try:
        return datasets.read_series(path, time_column or None, target_columns)
    except datasets.NotANumber as exc:
        raise ValueError(f"{exc}: set target_columns under [data] to the columns of numbers to model"
                         ) from None
    except datasets.MissingColumn as exc:
        if exc.column == time_column:
            fix = ('set time_column under [data] to the column of time stamps, or time_column = "" for a '
                   "file without them")
        else:
            fix = "set target_columns under [data] to the columns to model, e.g. target_columns = " \
                  f"{[c for c in exc.header if c != time_column][:1]}"
        raise ValueError(f"{exc}: {fix}") from None


def quiet(*args: Any, **kwargs: Any) -> None:
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


class _CheckpointTag(cbks.Callback):
    """After each checkpoint, out_dir/checkpoint.json says which of a job's networks
    checkpoint.grukit holds ({"network": tag}; the forecast job trains two)."""

    writes_checkpoint = True  # after ModelCheckpoint, which comes first in the list

    def __init__(self, path: str, tag: str) -> None:
        self.path, self.tag = path, tag

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if distributed.is_main():
            checkpoint.atomic_write(self.path, json.dumps({"network": self.tag}).encode())


def checkpoint_tag(resume: Optional[str]) -> Optional[str]:
    """The tag of the network the checkpoint ``resume`` holds (checkpoint.json beside it), or
    None (no resume, or a checkpoint of a job with one network)."""
    if resume is None:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(resume)), "checkpoint.json")
    try:
        with open(path, encoding="utf-8") as f:
            return str(json.load(f)["network"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fit(model: Sequential, job: JobConfig, out_dir: str, resume: Optional[str], x: np.ndarray, y: np.ndarray,
        validation: tuple, log=print, tag: Optional[str] = None) -> tuple[Any, float]:
    """The job's fit: early stopping on the validation loss (back to the best epoch's
    weights), and out_dir/checkpoint.grukit after every epoch, with the training state (and
    with ``tag``, checkpoint.json naming the network). Returns the history and the seconds
    the fit took."""
    t = job.train
    # t.patience epochs without a better validation loss are waited through, training stops at
    # the next: Keras' EarlyStopping counts that one too
    callbacks = [cbks.EarlyStopping("val_loss", patience=t.patience + 1, restore_best_weights=True),
                 cbks.ModelCheckpoint(os.path.join(out_dir, "checkpoint.grukit"), monitor="val_loss")]
    if tag is not None:
        callbacks.append(_CheckpointTag(os.path.join(out_dir, "checkpoint.json"), tag))
    if t.tensorboard:
        # one TensorBoard run per network of the job (the forecast job trains two)
        callbacks.append(cbks.TensorBoard(os.path.join(out_dir, "tensorboard", *([tag] if tag else []))))
    if resume is not None:
        log(f"resuming from {resume}")
    start = time.perf_counter()
    history = model.fit(x, y, epochs=t.epochs, batch_size=t.batch_size, validation_data=validation,
                        callbacks=callbacks, verbose=1, resume=resume)
    return history, time.perf_counter() - start


def write_outputs(out_dir: str, model: Sequential, info: dict, metrics: dict, history: Any, plot: str,
                  draw: Any, log=print) -> None:
    """What every job writes into its run folder: model.grukit (with ``info``, the job's
    settings that grukit predict reads), metrics.json, learning_curves.png, and the job's own
    plot ``plot`` (``draw(path)`` makes it)."""
    model.save(os.path.join(out_dir, "model.grukit"), extra=info)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    history.plot(os.path.join(out_dir, "learning_curves.png"), title="grukit train: learning curves")
    draw(os.path.join(out_dir, plot))
    log(f"\nwrote {out_dir}/model.grukit, metrics.json, {plot}, learning_curves.png "
        "(checkpoint.grukit: the last epoch, for --resume)")


def gru_stack(job: JobConfig) -> list:
    """The GRU layers of the [model] section (every one but the last returns sequences)."""
    m = job.model
    return [L.GRU(m.units, return_sequences=i < m.layers - 1, dropout=m.dropout, reset_after=m.reset_after)
            for i in range(m.layers)]


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


