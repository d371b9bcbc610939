"""``grukit train``'s forecast job: forecast a real series with a GRU, next to the
classical forecasters of baselines.py (persistence, seasonal naive, damped Holt-Winters,
ARIMA) on the same test points.

With no config the job forecasts the weekly Mauna Loa CO2 series shipped in the
package, one week ahead (job.py lists the config's fields). Each window is taken
relative to its last value and scaled by the spread of the training part's changes
(fitted on the training part only); the model forecasts the change. So a trend that
leaves the training range, as CO2's does, stays within what the network has seen.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

import numpy as np

from .. import datasets
from ..training import distributed
from ..training import layers as L
from ..training.sequential import Sequential
from . import baselines
from .job import JobConfig, fit, gru_stack, output_dir

# ------------------------------------------------------------------------ the job

def windows(values: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X (N, window, C), the target (N, C) `horizon` steps after each window's end, and
    the index of each target in the series."""
    n = len(values) - window - horizon + 1
    if n <= 0:
        raise ValueError(f"the series has {len(values)} steps: shorter than one window plus the horizon "
                         f"({window} + {horizon}); lower data.window or use a longer series")
    idx = np.arange(window)[None, :] + np.arange(n)[:, None]
    target_at = np.arange(n) + window - 1 + horizon
    return values[idx], values[target_at], target_at


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """Train, evaluate against the classical forecasters, write the outputs; returns metrics
    (train.run has seeded the generators and chosen the log)."""
    d, t = job.data, job.train
    if d.path == "co2":
        times, values = datasets.load_co2()
        source = "Mauna Loa weekly CO2 (shipped with grukit)"
    else:
        times, values = datasets.read_series(d.path, d.time_column or None, d.target_columns)
        source = d.path
    x, y, target_at = windows(values, d.window, d.horizon)
    n = len(x)
    n_test, n_val = int(n * job.split.test_fraction), int(n * job.split.val_fraction)
    n_train = n - n_val - n_test
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(f"{n} windows are too few to split into train, validation and test")
    last = x[:, -1, :]  # (N, C): each window's last value
    scale = (y[:n_train] - last[:n_train]).std(0) + 1e-8  # fitted on the training part only
    x_rel = ((x - last[:, None, :]) / scale).astype("float32")
    y_rel = ((y - last) / scale).astype("float32")
    parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
             "test": slice(n_train + n_val, n)}

    model = Sequential([*gru_stack(job), L.Dense(len(d.target_columns))])
    model.compile("adam", "mse", learning_rate=t.learning_rate, device=t.device)
    out_dir = output_dir(job, resume)
    log(f"grukit train: {source}, {len(values)} steps, {n} windows of {d.window} -> "
        f"{n_train} train / {n_val} validation / {n_test} test (in time order); output in {out_dir}")
    start = time.perf_counter()
    history = fit(model, job, out_dir, resume, x_rel[parts["train"]], y_rel[parts["train"]],
                  (x_rel[parts["val"]], y_rel[parts["val"]]), log)
    train_seconds = time.perf_counter() - start

    test = parts["test"]
    pred = last[test] + model.predict(x_rel[test]) * scale
    truth = y[test]
    lag = baselines.seasonal_lag(d.horizon, d.season)
    if (target_at[test] - lag < 0).any():
        raise ValueError(f"data.season={d.season} reaches before the series starts for test targets")
    metrics = {
        "data": source, "window": d.window, "horizon": d.horizon, "season": d.season,
        "windows": {"train": n_train, "val": n_val, "test": n_test},
        "epochs_run": len(history.history["loss"]), "train_seconds": round(train_seconds, 2),
    }
    if not distributed.is_main():  # under torchrun, process 0 fits the baselines and writes
        return {**metrics, "output_dir": out_dir}
    # the classical methods, fitted on the training part only (up to its last target)
    fit_end = int(target_at[n_train - 1]) + 1
    log(f"fitting the classical forecasters on the training part ({fit_end} steps) ...")
    classical, fitted = baselines.forecasts(values, target_at[test], d.horizon, d.season, fit_end)
    mase_scale = baselines.mase_scale(values[:fit_end], d.season)
    metrics["gru"] = baselines.accuracy(pred, truth, mase_scale)
    for name, forecast in classical.items():
        metrics[name] = baselines.accuracy(forecast, truth, mase_scale)
    metrics["classical"] = fitted
    metrics["verdict"] = baselines.verdict({k: metrics[k] for k in ("gru", *classical)})
    log(f"\ntest set ({n_test} windows, {times[target_at[test][0]]} .. {times[target_at[test][-1]]}), "
        f"{d.horizon} step{'s' if d.horizon > 1 else ''} ahead:")
    log(f"  {'':<16}{'RMSE':>10}{'MAE':>10}{'MASE':>9}{'sMAPE %':>9}")
    for name in ("gru", *classical):
        m = metrics[name]
        log(f"  {name:<16}{m['rmse']:>10.4f}{m['mae']:>10.4f}{m['mase']:>9.3f}{m['smape']:>9.3f}")
    for name in ("ets", "arima"):
        about = fitted.get(name)
        if isinstance(about, dict):
            about = f"{about['model']} ({about['seconds']} s)"
        log(f"  {name}: {about}")
    log(f"  {metrics['verdict']['line']}")

    job_info = {"kind": "forecast", "window": d.window, "horizon": d.horizon, "scale": scale.tolist(),
                "time_column": d.time_column if d.path != "co2" else "date",
                "target_columns": list(d.target_columns)}
    model.save(os.path.join(out_dir, "model.grukit"), extra=job_info)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    history.plot(os.path.join(out_dir, "learning_curves.png"), title="grukit train: learning curves")
    best = metrics["verdict"]["best_classical"]
    _plot_forecast(os.path.join(out_dir, "forecast.png"), [times[i] for i in target_at[test]], truth, pred,
                   classical[best], best, d.target_columns)
    log(f"\nwrote {out_dir}/model.grukit, metrics.json, forecast.png, learning_curves.png "
        "(checkpoint.grukit: the last epoch, for --resume)")
    return {**metrics, "output_dir": out_dir}


def _plot_forecast(path: str, times: list, truth: np.ndarray, pred: np.ndarray, baseline: np.ndarray,
                   baseline_name: str, names: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(10, 3.4 * len(names)), squeeze=False)
    steps = np.arange(len(times))
    for j, ax in enumerate(axes[:, 0]):
        ax.plot(steps, truth[:, j], label="truth", lw=1.2)
        ax.plot(steps, pred[:, j], label="GRU forecast", lw=1)
        ax.plot(steps, baseline[:, j], label=f"{baseline_name.replace('_', ' ')} (best classical)", lw=0.8,
                alpha=0.8)
        ticks = np.linspace(0, len(times) - 1, 6).astype(int)
        ax.set_xticks(ticks, [times[i] for i in ticks])
        ax.set_title(f"{names[j]}: test-set forecast")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predict(model: Sequential, info: dict, input_path: str, output_path: Optional[str] = None,
            log=print) -> str:
    """Forecasts for every complete window of a CSV series, written to a CSV."""
    times, values = datasets.read_series(input_path, info["time_column"] or None, info["target_columns"])
    x, _, target_at = windows(np.concatenate([values, np.zeros((info["horizon"], values.shape[1]))]),
                              info["window"], info["horizon"])
    scale = np.array(info["scale"])
    last = x[:, -1, :]
    pred = last + model.predict(((x - last[:, None, :]) / scale).astype("float32")) * scale
    output_path = output_path or os.path.splitext(input_path)[0] + ".forecast.csv"
    with open(output_path, "w") as f:
        names = [f"{c}_forecast_{info['horizon']}_ahead" for c in info["target_columns"]]
        f.write(",".join(["window_end", *names]) + "\n")
        for i, row in enumerate(pred):
            end = target_at[i] - info["horizon"]
            f.write(",".join([times[end], *[f"{v:.6g}" for v in row]]) + "\n")
    log(f"wrote {len(pred)} forecasts to {output_path}")
    return output_path
