"""GRU vs LSTM (and minGRU), measured: parameters, time per epoch and final metric on two real tasks.

    pip install -e .[examples]        # aeon (JapaneseVowels) and statsmodels (sunspots)
    python examples/gru_vs_lstm.py [--epochs 60] [--hidden 64] [--seeds 3]

Tutorials say a GRU has fewer parameters than an LSTM of the same width, trains
faster and often does as well. Here the same training loop runs three recurrent
layers of the same width: grukit's GRU, torch.nn.GRU, torch.nn.LSTM and grukit's
MinGRU (gates that do not read the state, so training runs in parallel over time), on
  - speakers: JapaneseVowels, 9 classes, variable length (packed sequences);
  - sunspots: yearly sunspot numbers, one year ahead from the last 22 years.
Each metric is the mean over a few seeds.
"""

import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import grukit as gk
from grukit import datasets
from grukit.app.forecast import windows

RNNS = {"grukit.GRU": gk.GRU, "torch.nn.GRU": nn.GRU, "torch.nn.LSTM": nn.LSTM, "grukit.MinGRU": gk.MinGRU}


class Net(nn.Module):
    def __init__(self, rnn, features, hidden, outputs):
        super().__init__()
        self.rnn = RNNS[rnn](features, hidden, batch_first=True)
        self.out = nn.Linear(hidden, outputs)

    def forward(self, x, lengths=None):
        if isinstance(self.rnn, gk.MinGRU):  # takes lengths= instead of a PackedSequence
            _, h = self.rnn(x, lengths=lengths)
            return self.out(h[-1])
        if lengths is not None:
            x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h  # the LSTM's (h, c)
        return self.out(h[-1])


def speakers_task():
    x_train, y_train, x_test, y_test = datasets.load_japanese_vowels()
    mean, std = np.concatenate(x_train).mean(0), np.concatenate(x_train).std(0)

    def tensors(seqs):
        lengths = torch.tensor([len(s) for s in seqs])
        x = torch.zeros(len(seqs), int(lengths.max()), 12)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = torch.from_numpy((s - mean) / std)
        return x, lengths

    (a, la), (b, lb) = tensors(x_train), tensors(x_test)
    metric = ("accuracy", lambda out, y: float((out.argmax(1) == y).float().mean()))
    return dict(train=(a, la, torch.from_numpy(y_train)), test=(b, lb, torch.from_numpy(y_test)), features=12,
                outputs=9, loss=nn.functional.cross_entropy, metric=metric, batch=16)


def sunspots_task():
    _, values = datasets.load_sunspots()
    x, y, _ = windows(values, 22, 1)
    y = y[:, 0]  # one step ahead
    n_test = int(0.2 * len(x))
    mean, std = values[: len(x) - n_test].mean(), values[: len(x) - n_test].std()
    x = torch.from_numpy(((x - mean) / std).astype("float32"))
    y = torch.from_numpy(((y - mean) / std).astype("float32"))
    metric = ("RMSE", lambda out, t: float(((out - t) ** 2).mean().sqrt() * std))
    return dict(train=(x[:-n_test], None, y[:-n_test]), test=(x[-n_test:], None, y[-n_test:]), features=1,
                outputs=1, loss=nn.functional.mse_loss, metric=metric, batch=16)


def run(task, rnn, hidden, epochs, seed):
    torch.manual_seed(seed)
    model = Net(rnn, task["features"], hidden, task["outputs"])
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    x, lengths, y = task["train"]
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(task["batch"]):
            loss = task["loss"](model(x[idx], None if lengths is None else lengths[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds = (time.perf_counter() - start) / epochs
    model.eval()
    with torch.no_grad():
        x, lengths, y = task["test"]
        score = task["metric"][1](model(x, lengths), y)
    rnn_params = sum(p.numel() for p in model.rnn.parameters())
    return rnn_params, seconds, score


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tasks", nargs="+", default=["speakers", "sunspots"], choices=["speakers", "sunspots"])
    args = p.parse_args(argv)
    makers = {"speakers": speakers_task, "sunspots": sunspots_task}
    res = {}
    for name in args.tasks:
        task = makers[name]()
        label = task["metric"][0]
        print(f"{name}: hidden {args.hidden}, {args.epochs} epochs, mean over {args.seeds} seeds")
        print(f"  {'layer':<15}{'parameters':>11}{'ms/epoch':>10}{'test ' + label:>16}")
        res[name] = {}
        for rnn in RNNS:
            runs = [run(task, rnn, args.hidden, args.epochs, seed) for seed in range(args.seeds)]
            params = runs[0][0]
            ms = 1000 * float(np.mean([r[1] for r in runs]))
            score = float(np.mean([r[2] for r in runs]))
            res[name][rnn] = {"parameters": params, "ms_per_epoch": ms, label: score}
            print(f"  {rnn:<15}{params:>11,}{ms:>10.1f}{score:>16.4f}")
    return res


if __name__ == "__main__":
    main()
