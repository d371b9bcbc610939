"""Spoken digit recognition on voices never heard in training (PyTorch style, gk.GRU).

    apt-get install espeak-ng         # the speech synthesiser that makes the data
    pip install -e .[examples]        # librosa: MFCC features
    python examples/spoken_digits.py [--epochs 30] [--voices 101]

espeak-ng says "zero" .. "nine" with each of its English voice variants. One
voice in four is held out: the test set is those voices only, at a speed and
pitch the training set never has either. Training clips vary speed and pitch.
Each clip becomes 13 MFCCs every 10 ms (variable length); the GRU runs each clip
for its own number of frames (``lengths=``) and the last state goes to a linear
layer. The baseline is a logistic regression on the clip's averaged MFCCs.
"""

import argparse
import time

import numpy as np
import torch
from torch import nn

import grukit as gk
from grukit import datasets


class DigitNet(nn.Module):
    def __init__(self, features, hidden, classes=10):
        super().__init__()
        self.gru = gk.GRU(features, hidden, num_layers=2, batch_first=True, dropout=0.1)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x, lengths):
        _, h = self.gru(x, lengths=lengths)
        return self.out(h[-1])


def featurize(clips, n_mfcc):
    feats = [datasets.mfcc(c["audio"], c["rate"], n_mfcc) for c in clips]
    return feats, np.array([c["digit"] for c in clips])


def batch(feats, idx, mean, std):
    lengths = torch.tensor([len(feats[i]) for i in idx])
    x = torch.zeros(len(idx), int(lengths.max()), feats[0].shape[1])
    for row, i in enumerate(idx):
        x[row, : len(feats[i])] = torch.from_numpy((feats[i] - mean) / std)
    return x, lengths


def accuracy(model, feats, labels, mean, std):
    model.eval()
    with torch.no_grad():
        x, lengths = batch(feats, np.arange(len(feats)), mean, std)
        return float((model(x, lengths).argmax(1).numpy() == labels).mean())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--voices", type=int, default=101, help="how many of espeak-ng's voice variants")
    p.add_argument("--speeds", type=int, nargs="+", default=[130, 175])
    p.add_argument("--pitches", type=int, nargs="+", default=[30, 70])
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--n-mfcc", type=int, default=13)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    start = time.perf_counter()
    voices = datasets.espeak_voices()[: args.voices]
    test_voices, train_voices = voices[::4], [v for i, v in enumerate(voices) if i % 4]
    train_clips = datasets.synthesize_digits(train_voices, args.speeds, args.pitches)
    test_clips = datasets.synthesize_digits(test_voices, speeds=[150], pitches=[50])
    (f_train, y_train), (f_test, y_test) = featurize(train_clips, args.n_mfcc), featurize(test_clips,
                                                                                          args.n_mfcc)
    data_seconds = time.perf_counter() - start
    frames = np.concatenate(f_train)
    mean, std = frames.mean(0), frames.std(0)

    model = DigitNet(args.n_mfcc, args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        order = rng.permutation(len(f_train))
        for i in range(0, len(order), 32):
            x, lengths = batch(f_train, order[i: i + 32], mean, std)
            loss = nn.functional.cross_entropy(model(x, lengths), torch.from_numpy(y_train[order[i: i + 32]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_seconds = time.perf_counter() - start
    acc = accuracy(model, f_test, y_test, mean, std)

    from sklearn.linear_model import LogisticRegression

    avg = [np.stack([(f.mean(0) - mean) / std for f in fs]) for fs in (f_train, f_test)]
    clf = LogisticRegression(max_iter=3000).fit(avg[0], y_train)
    baseline = float((clf.predict(avg[1]) == y_test).mean())
    res = {"test_accuracy": acc, "baseline_accuracy": baseline, "chance": 0.1,
           "train_clips": len(f_train), "test_clips": len(f_test), "train_voices": len(train_voices),
           "test_voices": len(test_voices), "data_seconds": round(data_seconds, 1),
           "train_seconds": round(train_seconds, 1)}
    print(f"spoken digits: {len(f_train)} training clips from {len(train_voices)} voices, "
          f"{len(f_test)} test clips from {len(test_voices)} unseen voices "
          f"(synthesised in {data_seconds:.1f} s)")
    print(f"  GRU accuracy {acc:.4f} ({args.epochs} epochs in {train_seconds:.1f} s); logistic regression on "
          f"averaged MFCCs {baseline:.4f}; chance 0.1")
    return res


if __name__ == "__main__":
    main()
