"""``grukit train`` with ``data.task = "anomaly"``: a score and a flag for every step of a
series, learnt from its normal part without labels.

The data is a CSV series (``time_column``, one or more ``target_columns``; a 0/1
``label_column``, when the CSV has it, is read for the report only, never for training
or the threshold), a file of the UCR anomaly archive under its own name
(``135_UCR_Anomaly_InternalBleeding16_1200_4187_4198.txt``: the values alone; the name gives
the training part's end and the anomaly, read for the report only), or ``path = "ucr135"``:
that series from inside aeon (the examples extra). An archive file is split as the archive
says (its first 1200 steps here are the training part), a CSV the same way when
``split.train_steps`` is set.

In time order (the training part, then the validation part, ``split.val_fraction`` of the
series, then the test part): the training part (assumed normal) trains a GRU on windows of
``window`` steps, in one of two ways (``scoring``):

* ``"forecast"`` (the default): the GRU forecasts each next value from the window before
  it; a step's error is its forecast error;
* ``"autoencoder"``: a sequence autoencoder (a GRU encoder to its last state, the code
  repeated over the window, a GRU decoder, a Dense layer per step) rebuilds the window
  ending at the step from that one code; a step's error is the window's reconstruction
  error.

Errors are in units of the training part's error spread per column (the root mean
square over columns, and over the window's steps for the autoencoder), and a step's score
is the mean error of the last ``smoothing`` steps (8 by default; 1: its own error): an
anomaly that lasts gives large errors over many steps, while a normal step's error is
rarely large for long (errors smoothed before they are judged, as in Hundman et al. 2018's
forecast-error detector for spacecraft telemetry). The validation part, also assumed
normal, sets the thresholds: the ``threshold_quantile`` of its scores, and of its steps'
own errors; a step is flagged when both its score and its own error are above theirs (a
surprising step in a surprising stretch: one outlier flags its own step, not the steps
after it whose means it raises). Over benchmarks/anomaly_suite.py's 240 anomalies in ten
real signals the smoothing took the forecast scoring's UCR hits from 0.76 to 0.80
(docs/results.md). The test part is scored and flagged. Next to the GRU, on
the same steps and with the same threshold rule: a rolling z-score (the distance from
the window's mean in the window's standard deviations), an isolation forest and a PCA
reconstruction of the windows (scikit-learn, fitted on the training part). With labels
the report gives precision, recall and F1 of the flags per step, and the UCR archive's
own measure: whether the highest score of the test part lies within 100 steps of a
labelled anomaly. Outputs: the checkpoint, metrics.json, learning curves and a plot of
the series with scores and flags; ``grukit predict MODEL series.csv`` writes a score and
a flag per step.
"""

from __future__ import annotations

import csv
import os
import re
from typing import Any, Optional

import numpy as np

from .. import datasets
from ..training import distributed
from ..training import layers as L
from ..training.sequential import Sequential
from . import seasons
from .job import JobConfig, fit, gru_stack, output_dir, read_series, target_columns, write_outputs

UCR_MARGIN = 100  # the UCR archive's rule: a detection within 100 steps of the anomaly counts
# a file of the UCR anomaly archive (KDD Cup 2021), named for its training part's end and its anomaly:
# 135_UCR_Anomaly_InternalBleeding16_1200_4187_4198.txt
UCR_FILE = re.compile(r"^(\d+)_UCR_Anomaly_(.+)_(\d+)_(\d+)_(\d+)\.txt$")


def _ucr_file(path: str) -> Optional[tuple]:
    """A UCR anomaly archive file (its name matches UCR_FILE): (source, values (T, 1), labels (T,),
    the training part's end), the anomaly labelled from its first to its last step as the name
    says (steps from 0, as aeon's copy of series 135 labels it); else None. The file holds the
    values alone, separated by white space (one per line, or a few files' one long line)."""
    match = UCR_FILE.match(os.path.basename(path))
    if match is None:
        return None
    number, name, train_end, begin, end = match.groups()
    train_end, begin, end = int(train_end), int(begin), int(end)
    with open(path, encoding="utf-8", errors="replace") as f:
        words = f.read().split()
    try:
        values = np.array([float(v) for v in words], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"data.path {path!r} is named as a UCR anomaly archive file but holds something "
                         f"other than numbers ({e})") from None
    if not (0 < train_end <= begin <= end < len(values)):
        raise ValueError(f"data.path {path!r}: its name puts the training end at {train_end} and the anomaly "
                         f"at {begin}..{end}, which do not fit its {len(values)} values")
    labels = np.zeros(len(values), dtype=int)
    labels[begin:end + 1] = 1
    return (f"UCR anomaly archive {number} ({name})", values[:, None], labels, train_end)


def _load(d) -> tuple[str, list[str], list[str], np.ndarray, Optional[np.ndarray], Optional[int]]:
    """(source, the columns modelled, times, values (T, C), labels (T,) or None, the archive's
    training end or None)."""
    if d.path == "ucr135":
        from aeon.datasets import load_kdd_tsad_135

        x, y = load_kdd_tsad_135()
        values = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return ("UCR anomaly archive 135 (InternalBleeding16, through aeon)", ["value"],
                [str(i) for i in range(len(x))], values, np.asarray(y, dtype=int), 1200)
    archive = _ucr_file(d.path)
    if archive is not None:
        source, values, labels, train_end = archive
        return source, ["value"], [str(i) for i in range(len(values))], values, labels, train_end
    header, _ = datasets.read_csv(d.path, [], header_only=True)
    labelled = bool(d.label_column) and d.label_column in header
    names = target_columns(d.path, d.time_column, d.target_columns, exclude=(d.label_column,), header=header)
    times, table = read_series(d.path, d.time_column, [*names, *([d.label_column] if labelled else [])])
    if d.time_column:
        seasons.check_order(times, d.path, d.time_column)
    values = table[:, :len(names)]
    labels = (table[:, -1] > 0.5).astype(int) if labelled else None
    return d.path, names, times, values, labels, None


def windows(z: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows (N, window, C) before each step t >= window, and those steps' values (N, C)."""
    idx = np.arange(window, len(z))
    return z[idx[:, None] + np.arange(-window, 0)[None, :]], z[idx]


def _rolling_z(z: np.ndarray, window: int) -> np.ndarray:
    x, target = windows(z, window)
    mean, std = x.mean(1), x.std(1) + 1e-8
    return np.abs((target - mean) / std).max(1)


def classical_detectors(z: np.ndarray, window: int, train_end: int, seed: int):
    """The classical detectors, fitted once on the training part's windows of ``z``: a function
    of a (normalised) series that returns each detector's score per step t >= window (a rolling
    z-score; an isolation forest and the PCA reconstruction error of the window ending at the
    step, without scikit-learn left out)."""
    try:
        from sklearn.decomposition import PCA
        from sklearn.ensemble import IsolationForest
    except ImportError:
        forest = pca = None
    else:
        fit_rows = _flat_windows(z[:train_end], window)
        forest = IsolationForest(n_estimators=200, random_state=seed).fit(fit_rows)
        pca = PCA(n_components=max(1, min(8, fit_rows.shape[1] // 2)), random_state=seed).fit(fit_rows)

    def scores(series: np.ndarray) -> dict[str, np.ndarray]:
        out = {"rolling_zscore": _rolling_z(series, window)}
        if forest is not None:
            flat = _flat_windows(series, window)
            rebuilt = pca.inverse_transform(pca.transform(flat))
            out.update({"isolation_forest": -forest.score_samples(flat),
                        "pca_reconstruction": np.sqrt(((flat - rebuilt) ** 2).mean(1))})
        return out

    return scores


def _flat_windows(z: np.ndarray, window: int) -> np.ndarray:
    """The window up to and including each step t >= window, flattened: (N, window * C)."""
    x, target = windows(z, window)
    return np.concatenate([x[:, 1:], target[:, None]], axis=1).reshape(len(x), -1)


def inputs(z: np.ndarray, window: int, scoring: str) -> tuple[np.ndarray, np.ndarray]:
    """The model's inputs and targets for the steps t >= window: forecast: the window before
    t (N, window, C) and z[t] (N, C); autoencoder: the window ending at t, twice."""
    x, target = windows(z, window)
    if scoring == "forecast":
        return x, target
    whole = np.concatenate([x[:, 1:], target[:, None]], axis=1)
    return whole, whole


WINDOW = 52  # data.window = 0 (the default): the steps each score looks back on


def layers(job: JobConfig, columns: int) -> list:
    """The network of data.scoring: a forecaster, or a sequence autoencoder whose decoder
    reads the encoder's last state (the code) at every step of the window."""
    if job.data.scoring == "forecast":
        return [*gru_stack(job), L.Dense(columns)]
    m = job.model
    return [*gru_stack(job), L.RepeatVector(job.data.window or WINDOW),
            L.GRU(m.units, return_sequences=True, reset_after=m.reset_after), L.Dense(columns)]


def _spread(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each column's root-mean-square error on the training part (over the window's steps too)."""
    axes = tuple(range(pred.ndim - 1))
    return np.sqrt(((pred - target) ** 2).mean(axes)) + 1e-8


def _score(pred: np.ndarray, target: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Each row's error in units of the spread: the root mean square over columns (and steps)."""
    e = ((target - pred) / spread) ** 2
    return np.sqrt(e.reshape(len(e), -1).mean(1))


def smooth(score: np.ndarray, steps: int) -> np.ndarray:
    """Each step's score: the mean of the last ``steps`` scores up to it (fewer at the start)."""
    if steps <= 1:
        return score
    total = np.cumsum(np.asarray(score, dtype=np.float64))
    before = np.concatenate([np.zeros(steps), total[:-steps]])[:len(total)]
    return ((total - before) / np.minimum(np.arange(1, len(total) + 1), steps)).astype(score.dtype)


def flag(score: np.ndarray, error: np.ndarray, threshold: float,
         step_threshold: Optional[float]) -> np.ndarray:
    """The GRU's flags: the score above its threshold and, where the score is smoothed
    (``step_threshold`` given), the step's own error above its threshold too."""
    flags = score > threshold
    return flags if step_threshold is None else flags & (error > step_threshold)


def evaluate(scores: np.ndarray, flags: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per-step precision, recall, F1 of the flags, and the UCR measure (the top score within
    UCR_MARGIN steps of a labelled anomaly), over the test steps given."""
    tp = int((flags & (labels > 0)).sum())
    precision = tp / max(int(flags.sum()), 1)
    recall = tp / max(int((labels > 0).sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    anomalous = np.flatnonzero(labels > 0)
    top = int(np.argmax(scores))
    hit = bool(len(anomalous) and np.abs(anomalous - top).min() <= UCR_MARGIN)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "ucr_hit": hit, "flagged": int(flags.sum())}


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """train.run for task = "anomaly" (seeded, torchrun and resume handled there)."""
    d, t = job.data, job.train
    source, names, times, values, labels, archive_train_end = _load(d)
    n, w = len(values), d.window or WINDOW
    train_steps = job.split.train_steps or archive_train_end or 0  # the config's, or the archive's
    if train_steps >= n:
        raise ValueError(f"split.train_steps={train_steps} leaves nothing of {source}'s {n} steps to "
                         "validate and test on")
    if train_steps:  # the training part as given, then the validation share
        train_end = train_steps
        val_end = train_end + int(n * job.split.val_fraction)
    else:
        val_end = int(n * (1 - job.split.test_fraction))
        train_end = val_end - int(n * job.split.val_fraction)
    if train_end - w < 10 or val_end - train_end < 10 or n - val_end < 10:
        raise ValueError(f"{n} steps with data.window={w} leave too few steps for training "
                         f"({train_end - w} windows), validation ({val_end - train_end}) or test "
                         f"({n - val_end})")
    mean, std = values[:train_end].mean(0), values[:train_end].std(0) + 1e-8
    z = ((values - mean) / std).astype("float32")
    x, target = inputs(z, w, d.scoring)  # row i scores step i + w
    rows = {"train": slice(0, train_end - w), "val": slice(train_end - w, val_end - w),
            "test": slice(val_end - w, n - w)}

    model = Sequential(layers(job, values.shape[1]))
    model.compile("adam", "mse", learning_rate=t.learning_rate, device=t.device)
    out_dir = output_dir(job, resume)
    log(f"grukit train: anomaly ({d.scoring} scoring) {source}: {n} steps x {values.shape[1]} column(s); "
        f"training on steps "
        f"0..{train_end - 1} (assumed normal), threshold from {train_end}..{val_end - 1}, test "
        f"{val_end}..{n - 1}; output in {out_dir}")
    history, seconds = fit(model, job, out_dir, resume, x[rows["train"]], target[rows["train"]],
                  (x[rows["val"]], target[rows["val"]]), log)
    pred = model.predict(x)
    spread = _spread(pred[rows["train"]], target[rows["train"]])
    error = _score(pred, target, spread)  # each step's own
    scores = {"gru": smooth(error, d.smoothing)}
    metrics: dict[str, Any] = {"data": source, "task": "anomaly", "scoring": d.scoring, "window": w,
                               "smoothing": d.smoothing,
                               "steps": {"train": train_end, "val": val_end - train_end, "test": n - val_end},
                               "epochs_run": len(history.history["loss"]), "train_seconds": round(seconds, 2)}
    if not distributed.is_main():  # under torchrun, process 0 scores the rivals and writes
        return {**metrics, "output_dir": out_dir}
    scores.update(classical_detectors(z, w, train_end, t.seed)(z))
    thresholds = {k: float(np.quantile(s[rows["val"]], d.threshold_quantile)) for k, s in scores.items()}
    step_threshold = float(np.quantile(error[rows["val"]], d.threshold_quantile)) if d.smoothing > 1 else None
    flags = {k: s > thresholds[k] for k, s in scores.items()}
    flags["gru"] = flag(scores["gru"], error, thresholds["gru"], step_threshold)
    metrics["threshold"] = {"quantile": d.threshold_quantile, "gru": thresholds["gru"],
                            **({"gru_step": step_threshold} if step_threshold is not None else {})}
    metrics["flagged_in_test"] = {k: int(f[rows["test"]].sum()) for k, f in flags.items()}
    test_labels = None if labels is None else labels[val_end:]
    if test_labels is not None and test_labels.any():
        for k in scores:
            metrics[k] = evaluate(scores[k][rows["test"]], flags[k][rows["test"]], test_labels)
        rivals = [k for k in scores if k != "gru"]
        best = max(rivals, key=lambda k: (metrics[k]["f1"], metrics[k]["ucr_hit"]))
        beats = metrics["gru"]["f1"] > metrics[best]["f1"]
        word = "beat" if beats else "was level with" if metrics["gru"]["f1"] == metrics[best]["f1"] else \
            "did not beat"
        metrics["verdict"] = {"best_classical": best, "beats_best": beats,
                              "line": f"the GRU {word} the best classical "
                                      f"detector ({best}): F1 {metrics['gru']['f1']:.3f} vs "
                                      f"{metrics[best]['f1']:.3f}"}
        log(f"\ntest part ({n - val_end} steps, {int(test_labels.sum())} labelled anomalous), flags "
            f"above the {d.threshold_quantile} quantile of the validation part's scores"
            + (" (the GRU's: its score, the mean error of the last "
               f"{d.smoothing} steps, and the step's own error):" if d.smoothing > 1 else ":"))
        log(f"  {'':<20}{'precision':>10}{'recall':>8}{'F1':>8}{'UCR hit':>9}{'flagged':>9}")
        for k in scores:
            m = metrics[k]
            log(f"  {k:<20}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}{str(m['ucr_hit']):>9}"
                f"{m['flagged']:>9}")
        log(f"  {metrics['verdict']['line']}")
    else:
        which = "no labels" if labels is None else f"none labelled anomalous in {d.label_column!r}"
        log(f"\ntest part ({n - val_end} steps, {which}): flagged "
            + ", ".join(f"{k} {v}" for k, v in metrics["flagged_in_test"].items()))
    info = {"kind": "anomaly", "scoring": d.scoring, "window": w, "smoothing": d.smoothing,
            "mean": mean.tolist(), "std": std.tolist(),
            "spread": spread.tolist(), "threshold": thresholds["gru"], "step_threshold": step_threshold,
            "time_column": d.time_column if archive_train_end is None else "",
            "target_columns": names}
    write_outputs(out_dir, model, info, metrics, history, "anomaly.png",
                  lambda path: _plot(path, values[:, 0], labels, scores["gru"], flags["gru"],
                                     thresholds["gru"], w, (train_end, val_end)), log)
    # every detector's scores (not in metrics.json), for comparing detectors and scorings
    parts = {"scores": scores, "labels": labels, "window": w, "train_end": train_end, "val_end": val_end}
    return {**metrics, "output_dir": out_dir, "parts": parts}


def _plot(path: str, series: np.ndarray, labels: Optional[np.ndarray], score: np.ndarray, flags: np.ndarray,
          threshold: float, window: int, split: tuple[int, int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
    steps = np.arange(len(series))
    top.plot(steps, series, lw=0.6, color="k")
    if labels is not None and labels.any():
        top.fill_between(steps, series.min(), series.max(), where=labels > 0, color="tab:red", alpha=0.3,
                         label="labelled anomalous")
        top.legend(loc="upper left")
    at = steps[window:]
    bottom.plot(at, score, lw=0.6, label="GRU score")
    bottom.axhline(threshold, color="tab:red", ls="--", lw=0.8, label="threshold")
    bottom.plot(at[flags], score[flags], "r.", ms=3, label="flagged")
    for ax in (top, bottom):
        for x in split:
            ax.axvline(x, color="tab:gray", ls=":", lw=0.8)
    bottom.set_xlabel("step (dotted: end of training, end of threshold setting)")
    bottom.legend(loc="upper left")
    top.set_title("grukit train: anomaly scores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gru_scores(model, info: dict, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A saved model's score and flag for each step t >= window of ``values`` (T, C), as the
    job scored its own series (``info``: the settings it saved with the model)."""
    z = ((values - np.array(info["mean"])) / np.array(info["std"])).astype("float32")
    x, target = inputs(z, info["window"], info.get("scoring", "forecast"))
    error = _score(model.predict(x), target, np.array(info["spread"]))
    # models saved before scores were smoothed have no "smoothing": their scores stay each step's own
    score = smooth(error, info.get("smoothing", 1))
    return score, flag(score, error, info["threshold"], info.get("step_threshold"))


def predict(model, info: dict, input_path: str, output_path: Optional[str], log=print) -> str:
    """A score and a flag for every step of a CSV series with the model's columns (the
    first ``window`` steps have no score: nothing before them to forecast from)."""
    archive = _ucr_file(input_path)
    if archive is not None:  # a UCR anomaly archive file: its values, numbered
        values = archive[1]
        times = [str(i) for i in range(len(values))]
    else:
        times, values = datasets.read_series(input_path, info["time_column"] or None, info["target_columns"])
    w = info["window"]
    if len(values) <= w:
        raise ValueError(f"{input_path!r} has {len(values)} rows: the model needs more than its window ({w})")
    score, flags = gru_scores(model, info, values)
    output_path = output_path or os.path.splitext(input_path)[0] + ".anomaly.csv"
    with open(output_path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["time", "score", "flag"])
        for i, when in enumerate(times):
            if i < w:
                out.writerow([when, "", ""])
            else:
                out.writerow([when, f"{float(score[i - w]):.6g}", int(flags[i - w])])
    log(f"wrote {len(times)} steps ({int(flags.sum())} flagged) to {output_path}")
    return output_path
