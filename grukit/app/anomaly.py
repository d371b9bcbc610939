"""``grukit train`` with ``data.task = "anomaly"``: a score and a flag for every step of a
series, learnt from its normal part without labels.

The data is a CSV series (``time_column``, one or more ``target_columns``; a 0/1
``label_column``, when the CSV has it, is read for the report only, never for training
or the threshold), or ``path = "ucr135"``: series 135 of the UCR anomaly archive
(InternalBleeding16, 7501 steps, one labelled anomaly; shipped inside aeon, the examples
extra), split as the archive says (the first 1200 steps are the training part).

In time order: the training part (assumed normal) trains a GRU on windows of
``window`` steps, in one of two ways (``scoring``):

* ``"forecast"`` (the default): the GRU forecasts each next value from the window before
  it; a step's score is its forecast error;
* ``"autoencoder"``: a sequence autoencoder (a GRU encoder to its last state, the code
  repeated over the window, a GRU decoder, a Dense layer per step) rebuilds the window
  ending at the step from that one code; a step's score is the window's reconstruction
  error.

Errors are in units of the training part's error spread per column (the root mean
square over columns, and over the window's steps for the autoencoder). The validation
part, also assumed normal, sets the threshold: the ``threshold_quantile`` of its scores;
the test part is scored and flagged. Next to the GRU, on
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
from typing import Any, Optional

import numpy as np

from .. import datasets
from ..training import distributed
from ..training import layers as L
from ..training.sequential import Sequential
from . import seasons
from .job import JobConfig, fit, gru_stack, output_dir, read_series, target_columns, write_outputs

UCR_MARGIN = 100  # the UCR archive's rule: a detection within 100 steps of the anomaly counts


def _load(d) -> tuple[str, list[str], list[str], np.ndarray, Optional[np.ndarray], Optional[int]]:
    """(source, the columns modelled, times, values (T, C), labels (T,) or None, the archive's
    training end or None)."""
    if d.path == "ucr135":
        from aeon.datasets import load_kdd_tsad_135

        x, y = load_kdd_tsad_135()
        values = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return ("UCR anomaly archive 135 (InternalBleeding16, through aeon)", ["value"],
                [str(i) for i in range(len(x))], values, np.asarray(y, dtype=int), 1200)
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


def _sklearn_scores(z: np.ndarray, window: int, train_end: int, seed: int) -> dict[str, np.ndarray]:
    """Isolation forest and PCA reconstruction error of each window (ending at the step),
    fitted on the training part's windows; {} without scikit-learn."""
    try:
        from sklearn.decomposition import PCA
        from sklearn.ensemble import IsolationForest
    except ImportError:
        return {}
    x, target = windows(z, window)
    flat = np.concatenate([x[:, 1:], target[:, None]], axis=1).reshape(len(x), -1)  # the window up to t
    fit_rows = flat[:train_end - window]
    forest = IsolationForest(n_estimators=200, random_state=seed).fit(fit_rows)
    pca = PCA(n_components=max(1, min(8, flat.shape[1] // 2)), random_state=seed).fit(fit_rows)
    rebuilt = pca.inverse_transform(pca.transform(flat))
    return {"isolation_forest": -forest.score_samples(flat),
            "pca_reconstruction": np.sqrt(((flat - rebuilt) ** 2).mean(1))}


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
    if archive_train_end is not None:  # the archive's training part, then the validation share
        train_end = archive_train_end
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
    scores = {"gru": _score(pred, target, spread), "rolling_zscore": _rolling_z(z, w)}
    metrics: dict[str, Any] = {"data": source, "task": "anomaly", "scoring": d.scoring, "window": w,
                               "steps": {"train": train_end, "val": val_end - train_end, "test": n - val_end},
                               "epochs_run": len(history.history["loss"]), "train_seconds": round(seconds, 2)}
    if not distributed.is_main():  # under torchrun, process 0 scores the rivals and writes
        return {**metrics, "output_dir": out_dir}
    scores.update(_sklearn_scores(z, w, train_end, t.seed))
    thresholds = {k: float(np.quantile(s[rows["val"]], d.threshold_quantile)) for k, s in scores.items()}
    flags = {k: s > thresholds[k] for k, s in scores.items()}
    metrics["threshold"] = {"quantile": d.threshold_quantile, "gru": thresholds["gru"]}
    metrics["flagged_in_test"] = {k: int(f[rows["test"]].sum()) for k, f in flags.items()}
    test_labels = None if labels is None else labels[val_end:]
    if test_labels is not None and test_labels.any():
        for k in scores:
            metrics[k] = evaluate(scores[k][rows["test"]], flags[k][rows["test"]], test_labels)
        rivals = [k for k in scores if k != "gru"]
        best = max(rivals, key=lambda k: (metrics[k]["f1"], metrics[k]["ucr_hit"]))
        beats = metrics["gru"]["f1"] > metrics[best]["f1"]
        metrics["verdict"] = {"best_classical": best, "beats_best": beats,
                              "line": f"the GRU {'beat' if beats else 'did not beat'} the best classical "
                                      f"detector ({best}): F1 {metrics['gru']['f1']:.3f} vs "
                                      f"{metrics[best]['f1']:.3f}"}
        log(f"\ntest part ({n - val_end} steps, {int(test_labels.sum())} labelled anomalous), flags "
            f"above the {d.threshold_quantile} quantile of the validation part's scores:")
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
    info = {"kind": "anomaly", "scoring": d.scoring, "window": w, "mean": mean.tolist(), "std": std.tolist(),
            "spread": spread.tolist(), "threshold": thresholds["gru"],
            "time_column": d.time_column if d.path != "ucr135" else "",
            "target_columns": names}
    write_outputs(out_dir, model, info, metrics, history, "anomaly.png",
                  lambda path: _plot(path, values[:, 0], labels, scores["gru"], thresholds["gru"], w,
                                     (train_end, val_end)), log)
    # every detector's scores (not in metrics.json), for comparing detectors and scorings
    parts = {"scores": scores, "labels": labels, "window": w, "train_end": train_end, "val_end": val_end}
    return {**metrics, "output_dir": out_dir, "parts": parts}


def _plot(path: str, series: np.ndarray, labels: Optional[np.ndarray], score: np.ndarray, threshold: float,
          window: int, split: tuple[int, int]) -> None:
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
    flagged = at[score > threshold]
    bottom.plot(flagged, score[score > threshold], "r.", ms=3, label="flagged")
    for ax in (top, bottom):
        for x in split:
            ax.axvline(x, color="tab:gray", ls=":", lw=0.8)
    bottom.set_xlabel("step (dotted: end of training, end of threshold setting)")
    bottom.legend(loc="upper left")
    top.set_title("grukit train: anomaly scores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predict(model, info: dict, input_path: str, output_path: Optional[str], log=print) -> str:
    """A score and a flag for every step of a CSV series with the model's columns (the
    first ``window`` steps have no score: nothing before them to forecast from)."""
    times, values = datasets.read_series(input_path, info["time_column"] or None, info["target_columns"])
    w = info["window"]
    if len(values) <= w:
        raise ValueError(f"{input_path!r} has {len(values)} rows: the model needs more than its window ({w})")
    z = ((values - np.array(info["mean"])) / np.array(info["std"])).astype("float32")
    x, target = inputs(z, w, info.get("scoring", "forecast"))
    score = _score(model.predict(x), target, np.array(info["spread"]))
    output_path = output_path or os.path.splitext(input_path)[0] + ".anomaly.csv"
    with open(output_path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["time", "score", "flag"])
        for i, when in enumerate(times):
            if i < w:
                out.writerow([when, "", ""])
            else:
                s = float(score[i - w])
                out.writerow([when, f"{s:.6g}", int(s > info["threshold"])])
    log(f"wrote {len(times)} steps ({int((score > info['threshold']).sum())} flagged) to {output_path}")
    return output_path
