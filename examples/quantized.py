"""Int8 and bfloat16 inference on two real tasks: accuracy and speed against float32.

    pip install -e .[examples]
    python examples/quantized.py [--speaker-epochs 60] [--review-epochs 8]

Trains the models of speakers.py (JapaneseVowels, 9 speakers, Masking + GRU(64))
and sentiment.py (4000 food reviews, Embedding + GRU(32)), then runs each test set
through the float32 model, ``gk.quantize(model)`` (int8 weights on the fused CPU
engine) and ``gk.quantize(model, torch.bfloat16)``. Prints the test accuracy of each
and the inference time of the whole test set (one sequence per call, as a deployed
model sees them, and in batches of 32), timed in turns in this one process.
"""

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import grukit as gk
from grukit import datasets, layers

sys.path.insert(0, str(Path(__file__).parent))
from sentiment import encode, tokenize  # noqa: E402  (the sibling examples' data preparation)
from speakers import pad  # noqa: E402


def speakers_task(epochs: int, units: int):
    x_train, y_train, x_test, y_test = datasets.load_japanese_vowels()
    longest = max(len(s) for s in x_train + x_test)
    mean, std = np.concatenate(x_train).mean(0), np.concatenate(x_train).std(0)
    a = pad([(s - mean) / std for s in x_train], longest)
    b = pad([(s - mean) / std for s in x_test], longest)
    model = gk.Sequential([layers.Input(shape=(longest, 12)), layers.Masking(0.0), layers.GRU(units),
                           layers.Dense(9, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"], learning_rate=0.003)
    model.fit(a, y_train, epochs=epochs, batch_size=16, verbose=0)
    return model, b, np.asarray(y_test), lambda p: p.argmax(1)


def reviews_task(epochs: int, units: int, maxlen: int = 200, num_words: int = 10000):
    train_text, y_train, test_text, y_test = datasets.load_reviews()
    counts = Counter(w for t in train_text for w in tokenize(t))
    vocab = {w: i + 2 for i, (w, _) in enumerate(counts.most_common(num_words - 2))}
    x_train, x_test = encode(train_text, vocab, maxlen), encode(test_text, vocab, maxlen)
    model = gk.Sequential([layers.Embedding(num_words, 32, mask_zero=True), layers.GRU(units),
                           layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return model, x_test, np.asarray(y_test), lambda p: (p[:, 0] > 0.5).astype(int)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def evaluate(name, model, x, y, decide, repeats: int, one_by_one: int) -> dict:
    variants = {"float32": model, "int8": gk.quantize(model), "bfloat16": gk.quantize(model, torch.bfloat16)}
    res = {}
    for label, m in variants.items():
        res[label] = {"accuracy": float((decide(m.predict(x)) == y).mean())}
    single = x[:one_by_one]
    for _ in range(repeats):  # in turns, so that a slow spell falls on all alike
        for label, m in variants.items():
            t_batch = timed(lambda m=m: m.predict(x, batch_size=32), 1)
            t_single = timed(lambda m=m: [m.predict(single[i:i + 1]) for i in range(len(single))], 1)
            res[label].setdefault("batch32", []).append(t_batch)
            res[label].setdefault("single", []).append(t_single / len(single))
    for label in variants:
        for key in ("batch32", "single"):
            res[label][key] = statistics.median(res[label][key])
    base = res["float32"]
    print(f"{name}: {len(x)} test sequences")
    for label, r in res.items():
        change = r["accuracy"] - base["accuracy"]
        print(f"  {label:>8}: accuracy {r['accuracy']:.4f} ({change:+.4f}); test set in batches of 32 "
              f"{r['batch32'] * 1e3:.1f} ms ({base['batch32'] / r['batch32']:.2f}x); one sequence per call "
              f"{r['single'] * 1e3:.3f} ms ({base['single'] / r['single']:.2f}x)")
    return res


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--speaker-epochs", type=int, default=60)
    p.add_argument("--review-epochs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--one-by-one", type=int, default=200, help="sequences timed one per call")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    out = {}
    model, x, y, decide = speakers_task(args.speaker_epochs, 64)
    out["speakers"] = evaluate("JapaneseVowels speakers, GRU(64)", model, x, y, decide, args.repeats,
                               args.one_by_one)
    model, x, y, decide = reviews_task(args.review_epochs, 32)
    out["reviews"] = evaluate("food reviews sentiment, GRU(32)", model, x, y, decide, args.repeats,
                              args.one_by_one)
    return out


if __name__ == "__main__":
    main()
