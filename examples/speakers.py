"""Speaker recognition on JapaneseVowels: which of nine men said /ae/?

    pip install -e .[examples]        # aeon: the UCI JapaneseVowels data, read offline
    python examples/speakers.py [--epochs 60] [--units 64]

Each utterance is 7 to 29 frames of 12 LPC cepstrum coefficients: sequences of
different lengths. They are padded with zeros after the end and a Masking layer
tells the GRU where each one stops (the GRU then runs each row for its own
length, exactly as if it were alone). The split is the data set's own: 270
utterances to train on (30 per speaker), 370 to test. The baseline is a
logistic regression on each utterance's per-coefficient mean and standard
deviation, which sees no order in time.
"""

import argparse
import time

import numpy as np
import torch

import grukit as gk
from grukit import datasets, layers


def pad(seqs, length):
    """Zero-padded (N, length, C) array of variable-length (T_i, C) sequences."""
    out = np.zeros((len(seqs), length, seqs[0].shape[1]), dtype="float32")
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def summary_features(seqs):
    return np.stack([np.concatenate([s.mean(0), s.std(0)]) for s in seqs])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    x_train, y_train, x_test, y_test = datasets.load_japanese_vowels()
    longest = max(len(s) for s in x_train + x_test)
    mean = np.concatenate(x_train).mean(0)
    std = np.concatenate(x_train).std(0)
    norm = [[(s - mean) / std for s in part] for part in (x_train, x_test)]
    a, b = pad(norm[0], longest), pad(norm[1], longest)
    # padded frames are exactly 0 in every channel; a real normalised frame never is
    assert not (np.abs(np.concatenate(norm[0])).sum(1) == 0).any()

    model = gk.Sequential([
        layers.Input(shape=(longest, 12)),
        layers.Masking(mask_value=0.0),
        layers.GRU(args.units),
        layers.Dense(9, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  learning_rate=0.003)
    start = time.perf_counter()
    history = model.fit(a, y_train, epochs=args.epochs, batch_size=16, verbose=0)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(b, y_test)

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(summary_features(x_train))
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(summary_features(x_train)), y_train)
    baseline = float((clf.predict(scaler.transform(summary_features(x_test))) == y_test).mean())
    res = {"test_accuracy": acc, "test_loss": loss, "baseline_accuracy": baseline, "chance": 1 / 9,
           "epochs": len(history.history["loss"]), "train_seconds": round(seconds, 1)}
    print(f"JapaneseVowels, 370 test utterances of 9 speakers (lengths {min(map(len, x_test))}-"
          f"{max(map(len, x_test))} frames):")
    print(f"  GRU({args.units}) accuracy {acc:.4f}  (trained {res['epochs']} epochs in {seconds:.1f} s)")
    print(f"  logistic regression on mean/std of frames {baseline:.4f};  chance {1 / 9:.4f}")
    return res


if __name__ == "__main__":
    main()
