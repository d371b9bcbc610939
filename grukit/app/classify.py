"""``grukit train`` with ``data.task = "classify"``: label whole sequences.

The data is either ``path = "japanese_vowels"`` (nine speakers, from aeon: the
examples extra) or a CSV in long format, one row per time step::

    sequence,label,f1,f2            # sequence_column, label_column, feature_columns
    a,yes,0.1,2.0                   # rows of one sequence are consecutive
    a,yes,0.3,1.9                   # (and in time order)
    b,no,0.2,0.7
    ...

Sequences may have different lengths. Features are standardised on the
training part; each step also gets a constant 1.0 channel, so that padding
(all zeros) is told apart exactly and a Masking layer makes the GRU stop at
each sequence's end. The split is stratified and seeded. Baselines: the
majority class, and the nearest class centroid of each sequence's mean
features. Outputs: the checkpoint, metrics.json, learning curves and a
confusion-matrix PNG.
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
from .job import JobConfig, fit, gru_stack, output_dir, write_outputs


def read_sequences(path: str, sequence_column: str, label_column: Optional[str], feature_columns: list
                   ) -> tuple[list[str], list[np.ndarray], list[str], list[str]]:
    """(ids, sequences (T_i, F) float64, labels (or "" without label_column), feature names)."""
    named = [sequence_column, *([label_column] if label_column else []), *feature_columns]
    header, table = datasets.read_csv(path, named)
    features = list(feature_columns) or [c for c in header if c not in (sequence_column, label_column)]
    if sequence_column in features or (label_column and label_column in features):
        raise ValueError(f"feature_columns {features} must not name the sequence or label column")
    if not features:
        raise ValueError(f"{path!r} has no feature columns besides {sequence_column!r} and "
                         f"{label_column!r}")
    ids, seqs, labels, rows, seen = [], [], [], [], set()
    for line, row in table:
        sid = row[sequence_column]
        if not ids or sid != ids[-1]:
            if sid in seen:
                raise ValueError(f"{path!r} line {line}: the rows of sequence {sid!r} are not "
                                 "consecutive")
            seen.add(sid)
            if rows:
                seqs.append(np.array(rows))
            ids.append(sid)
            labels.append(row[label_column] if label_column else "")
            rows = []
        elif label_column and row[label_column] != labels[-1]:
            raise ValueError(f"{path!r} line {line}: sequence {sid!r} changes label from {labels[-1]!r} "
                             f"to {row[label_column]!r}; a sequence has one label")
        try:
            rows.append([float(row[c]) for c in features])
        except (TypeError, ValueError):
            raise ValueError(f"{path!r} line {line}: a feature in {features} is not a number") from None
    if rows:
        seqs.append(np.array(rows))
    if not ids:
        raise ValueError(f"data file {path!r} has a header but no rows")
    return ids, seqs, labels, features


def pad(seqs: list[np.ndarray], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(N, longest, F + 1) float32: standardised features and a 1.0 'present' channel, zeros after the end."""
    out = np.zeros((len(seqs), max(len(s) for s in seqs), len(mean) + 1), dtype="float32")
    for i, s in enumerate(seqs):
        out[i, : len(s), :-1] = (s - mean) / std
        out[i, : len(s), -1] = 1.0
    return out


def split_labels(labels: list, job: JobConfig, source: str, what: str
                 ) -> tuple[list, np.ndarray, dict[str, np.ndarray]]:
    """The classes (sorted), each sample's class index, and the stratified train/validation/test
    parts (_split) of a labelled job's samples (``what``: "sequences", "texts"); a clear error
    for one class or too few samples."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"{source} has {len(classes)} class(es) in column {job.data.label_column!r}; "
                         "classification needs at least 2")
    y = np.array([classes.index(lab) for lab in labels])
    parts = _split(y, job.split.val_fraction, job.split.test_fraction, job.train.seed)
    if min(len(v) for v in parts.values()) < 1:
        raise ValueError(f"{len(labels)} {what} are too few to split into train, validation and test")
    return classes, y, parts


def _split(y: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Stratified: every class gives the same share of its samples to each part."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test, n_val = round(len(idx) * test_fraction), round(len(idx) * val_fraction)
        parts["test"] += list(idx[:n_test])
        parts["val"] += list(idx[n_test:n_test + n_val])
        parts["train"] += list(idx[n_test + n_val:])
    return {k: np.sort(np.array(v, dtype=int)) for k, v in parts.items()}


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """train.run for task = "classify" (seeded, torchrun and resume handled there)."""
    d, t = job.data, job.train
    if d.path == "japanese_vowels":
        a, ya, b, yb = datasets.load_japanese_vowels()
        seqs = [s.astype("float64") for s in a + b]
        labels = [f"speaker {k + 1}" for k in np.concatenate([ya, yb])]
        features = [f"lpc{k + 1}" for k in range(12)]
        source = "JapaneseVowels (UCI, through aeon)"
    else:
        _, seqs, labels, features = read_sequences(d.path, d.sequence_column, d.label_column,
                                                   list(d.feature_columns))
        source = d.path
    classes, y, parts = split_labels(labels, job, source, "sequences")
    train_frames = np.concatenate([seqs[i] for i in parts["train"]])
    mean, std = train_frames.mean(0), train_frames.std(0) + 1e-8
    length = max(len(s) for s in seqs)
    x = pad(seqs, mean, std)

    model = Sequential([L.Masking(0.0), *gru_stack(job),
                        L.Dense(len(classes), activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], device=t.device,
                  learning_rate=t.learning_rate)
    out_dir = output_dir(job, resume)
    log(f"grukit train: classify {source}: {len(seqs)} sequences of {min(map(len, seqs))}-{length} steps x "
        f"{len(features)} features, {len(classes)} classes -> {len(parts['train'])} train / "
        f"{len(parts['val'])} validation / {len(parts['test'])} test (stratified); output in {out_dir}")
    history, seconds = fit(model, job, out_dir, resume, x[parts["train"]], y[parts["train"]],
                           (x[parts["val"]], y[parts["val"]]), log)

    test = parts["test"]
    pred = model.predict(x[test]).argmax(1)
    accuracy = float((pred == y[test]).mean())
    majority = float((y[test] == np.bincount(y[parts["train"]]).argmax()).mean())
    centroids = np.stack([np.mean([seqs[i].mean(0) for i in parts["train"] if y[i] == c], 0)
                          for c in range(len(classes))])
    means = np.stack([seqs[i].mean(0) for i in test])
    dist = (((means[:, None, :] - centroids[None]) / std) ** 2).sum(-1)
    centroid = float((dist.argmin(1) == y[test]).mean())
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (y[test], pred), 1)
    metrics = {"data": source, "task": "classify", "classes": classes,
               "sequences": {k: len(v) for k, v in parts.items()}, "epochs_run": len(history.history["loss"]),
               "train_seconds": round(seconds, 2), "gru": {"accuracy": accuracy},
               "nearest_centroid": {"accuracy": centroid}, "majority_class": {"accuracy": majority},
               "confusion": confusion.tolist()}
    if not distributed.is_main():  # under torchrun, process 0 writes
        return {**metrics, "output_dir": out_dir}
    log(f"\ntest set ({len(test)} sequences) accuracy: GRU {accuracy:.4f}   "
        "nearest centroid of mean features "
        f"{centroid:.4f}   majority class {majority:.4f}")
    info = {"kind": "classify", "sequence_column": d.sequence_column, "feature_columns": features,
            "classes": classes, "mean": mean.tolist(), "std": std.tolist()}
    write_outputs(out_dir, model, info, metrics, history, "confusion.png",
                  lambda path: plot_confusion(path, confusion, classes), log)
    return {**metrics, "output_dir": out_dir}


def plot_confusion(path: str, confusion: np.ndarray, classes: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax.imshow(confusion, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center",
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test-set confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predict(model, info: dict, input_path: str, output_path: Optional[str], log=print) -> str:
    """Labels (and their probability) for every sequence of a long-format CSV."""
    ids, seqs, _, _ = read_sequences(input_path, info["sequence_column"], None, info["feature_columns"])
    probs = model.predict(pad(seqs, np.array(info["mean"]), np.array(info["std"])))
    output_path = output_path or os.path.splitext(input_path)[0] + ".labels.csv"
    with open(output_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([info["sequence_column"], "predicted_label", "probability"])
        for sid, p in zip(ids, probs, strict=True):
            w.writerow([sid, info["classes"][int(p.argmax())], f"{float(p.max()):.4f}"])
    log(f"wrote {len(ids)} labels to {output_path}")
    return output_path
