"""Unsupervised anomaly detection in an ECG: `grukit train`'s anomaly job on the MIT-BIH sample.

    pip install -e .[examples]        # sktime: ships the labelled MIT-BIH sample, read offline
    python examples/ecg_anomaly.py [--scoring autoencoder|forecast] [--epochs 150] [--out runs/ecg]

The record: 7500 samples (360 Hz, about 21 s) of an MIT-BIH arrhythmia ECG with its
abnormal stretch labelled, averaged down to 90 Hz and written as a CSV (step, ecg,
label), the way a user would hand their own series to `grukit train`. The job (task
"anomaly", grukit/app/anomaly.py) does the rest, in time order: the first half (all
normal) trains the GRU, the next 15% (also normal) sets the thresholds at a quantile of
its scores and errors, the last 35% is scored step by step. With ``--scoring autoencoder``
the GRU rebuilds the 1.2-second window ending at each step (long enough that a normal
window always holds a heartbeat) from one code, and a step's error is that window's;
with ``forecast`` it forecasts each next sample from the window before it. A step's score
is the mean error of the last 8 steps; it is flagged when its score and its own error
both pass their thresholds. The label
column is read for the report only. Next to the GRU, the job scores the same steps with
a rolling z-score, an isolation forest and a PCA reconstruction of the windows, and
reports per-step precision, recall and F1 and the UCR archive's measure (is the highest
score within 100 steps of the labelled stretch?).

Equivalent command line, on the CSV this script writes:

    grukit train job.toml     # [data] task = "anomaly", path = "ecg.csv", scoring = "autoencoder", ...
"""

import argparse
import os

from grukit import datasets
from grukit.app import train
from grukit.app.job import JobConfig


def write_csv(path: str) -> tuple[int, int]:
    """The record at 90 Hz as a CSV; (steps, labelled abnormal steps)."""
    signal, labels = datasets.load_ecg()
    n = len(signal) // 4 * 4  # 360 Hz -> 90 Hz
    signal, labels = signal[:n].reshape(-1, 4).mean(1), labels[:n].reshape(-1, 4).max(1)
    with open(path, "w") as f:
        f.write("step,ecg,label\n")
        rows = enumerate(zip(signal, labels, strict=True))
        f.writelines(f"{i},{v:.6g},{int(lab)}\n" for i, (v, lab) in rows)
    return len(signal), int(labels.sum())


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scoring", choices=("autoencoder", "forecast"), default="autoencoder")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--window", type=int, default=108, help="steps at 90 Hz (108: 1.2 s)")
    # an autoencoder rebuilds whole windows from one code: more units, a higher learning
    # rate and more patience than the job's defaults (which are a forecaster's)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--quantile", type=float, default=0.99,
                   help="flag scores above this quantile of the normal threshold-setting part's scores")
    p.add_argument("--out", default=os.path.join("runs", "ecg"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "ecg.csv")
    steps, abnormal = write_csv(path)
    job = JobConfig()
    d = job.data
    d.task, d.path, d.time_column = "anomaly", path, "step"
    d.target_columns, d.label_column = ["ecg"], "label"
    d.window, d.scoring, d.threshold_quantile = args.window, args.scoring, args.quantile
    job.split.val_fraction, job.split.test_fraction = 0.15, 0.35
    job.model.units = args.units
    job.train.epochs, job.train.seed = args.epochs, args.seed
    job.train.learning_rate, job.train.patience = args.lr, args.patience
    job.output.dir = os.path.join(args.out, args.scoring)
    print(f"MIT-BIH sample at 90 Hz: {steps} steps, {abnormal} labelled abnormal; wrote {path}")
    metrics = train.run(job)
    return {**metrics, "csv": path}


if __name__ == "__main__":
    main()
