"""Unsupervised anomaly detection in an ECG with a GRU sequence autoencoder.

    pip install -e .[examples]        # sktime: ships the labelled MIT-BIH sample, read offline
    python examples/ecg_anomaly.py [--epochs 200] [--window 108] [--out runs/ecg]

The record: 7500 samples (360 Hz, about 21 s) of an MIT-BIH arrhythmia ECG with
its abnormal stretch labelled, averaged down to 90 Hz. The autoencoder (a
bidirectional gk.GRU encoder -> a 16-number code -> a gk.GRU decoder that reads
the code and its position in the window) learns to rebuild 1.2-second windows
(long enough that a normal one always holds a heartbeat) of the first half of
the record, which is all normal. It never sees a label. The next 15%, also
normal, sets the threshold: a window is flagged when its reconstruction error
is above 95% of the errors there (a 5% false-alarm budget on normal data).
Precision and recall are measured on the last 35% against the labels (a window
is abnormal when its centre is labelled so). The baseline is the same rule with
PCA (a linear autoencoder) of the same code size.
"""

import argparse
import os
import time

import numpy as np
import torch
from torch import nn

import grukit as gk
from grukit import datasets


class Autoencoder(nn.Module):
    def __init__(self, hidden=64, code=16):
        super().__init__()
        self.encoder = gk.GRU(1, hidden, batch_first=True, bidirectional=True)
        self.to_code = nn.Linear(2 * hidden, code)
        self.decoder = gk.GRU(code + 1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        _, h = self.encoder(x)
        code = self.to_code(torch.cat([h[0], h[1]], dim=1))  # both directions' last states
        # the decoder reads the code at every step, next to where in the window it is
        t = torch.linspace(-1, 1, x.shape[1]).expand(x.shape[0], -1)[..., None]
        y, _ = self.decoder(torch.cat([code[:, None, :].expand(-1, x.shape[1], -1), t], dim=2))
        return self.out(y)


def cut(signal, labels, start, stop, window, stride):
    starts = np.arange(start, stop - window + 1, stride)
    x = np.stack([signal[s: s + window] for s in starts])
    y = labels[starts + window // 2] > 0  # abnormal: the window centre is labelled so
    return x, y, starts


def precision_recall(flag, truth):
    tp = int((flag & truth).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": int(flag.sum())}


def plot(path, signal, labels, starts, window, flag, split):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 3.4))
    t = np.arange(len(signal)) / 90
    ax.plot(t, signal, lw=0.6, color="k")
    ax.fill_between(t, signal.min(), signal.max(), where=labels > 0, color="tab:red", alpha=0.2,
                    label="labelled abnormal")
    for s in starts[flag]:
        ax.axvspan(s / 90, (s + window) / 90, ymin=0, ymax=0.06, color="tab:blue", lw=0)
    for x in split:
        ax.axvline(x / 90, color="tab:gray", ls="--", lw=0.8)
    ax.set_xlabel("seconds (dashed lines: end of training, end of threshold setting; blue: windows flagged)")
    ax.set_title("ECG anomaly detection with a GRU autoencoder")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--window", type=int, default=108, help="steps at 90 Hz")
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--code", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--quantile", type=float, default=0.95,
                   help="flag errors above this quantile of the normal threshold-setting windows' errors")
    p.add_argument("--out", default=os.path.join("runs", "ecg"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    signal, labels = datasets.load_ecg()
    n = len(signal) // 4 * 4  # 360 Hz -> 90 Hz
    signal, labels = signal[:n].reshape(-1, 4).mean(1), labels[:n].reshape(-1, 4).max(1)
    split, test_from = int(0.5 * len(signal)), int(0.65 * len(signal))
    if labels[:test_from].any():
        raise SystemExit("the training part holds labelled anomalies; this example expects a clean start")
    mean, std = signal[:split].mean(), signal[:split].std()
    z = ((signal - mean) / std).astype("float32")
    x_train, _, _ = cut(z, labels, 0, split, args.window, args.stride)
    x_val, _, _ = cut(z, labels, split, test_from, args.window, args.stride)
    x_test, y_test, starts = cut(z, labels, test_from, len(z), args.window, args.stride)

    model = Autoencoder(code=args.code)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    batches = -(-len(x_train) // 32)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * batches)
    xt = torch.from_numpy(x_train)[..., None]
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(32):
            loss = nn.functional.mse_loss(model(xt[idx]), xt[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        def errors(x):
            x = torch.from_numpy(x)[..., None]
            return ((model(x) - x) ** 2).mean((1, 2)).numpy()
        val_err, test_err = errors(x_val), errors(x_test)
    gru_flag = test_err > np.quantile(val_err, args.quantile)

    from sklearn.decomposition import PCA

    pca = PCA(n_components=args.code).fit(x_train)
    def pca_errors(x):
        return ((pca.inverse_transform(pca.transform(x)) - x) ** 2).mean(1)
    pca_flag = pca_errors(x_test) > np.quantile(pca_errors(x_val), args.quantile)

    from sklearn.metrics import roc_auc_score

    res = {"gru": precision_recall(gru_flag, y_test), "pca": precision_recall(pca_flag, y_test),
           "gru_auc": float(roc_auc_score(y_test, test_err)),
           "pca_auc": float(roc_auc_score(y_test, pca_errors(x_test))),
           "test_windows": len(y_test), "abnormal_windows": int(y_test.sum()), "train_windows": len(x_train),
           "train_seconds": round(seconds, 1), "out": args.out}
    os.makedirs(args.out, exist_ok=True)
    plot(os.path.join(args.out, "ecg_anomalies.png"), signal, labels, starts, args.window, gru_flag,
         (split, test_from))
    print(f"{len(y_test)} test windows of {args.window} steps, {res['abnormal_windows']} labelled abnormal; "
          f"GRU autoencoder trained on {len(x_train)} normal windows in {seconds:.1f} s")
    for name in ("gru", "pca"):
        r = res[name]
        print(f"  {name.upper():<4} precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
              f"F1 {r['f1']:.3f}  "
              f"({r['flagged']} flagged); ROC AUC of the error {res[name + '_auc']:.3f}")
    print(f"wrote {args.out}/ecg_anomalies.png")
    return res


if __name__ == "__main__":
    main()
