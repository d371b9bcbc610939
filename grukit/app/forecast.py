"""``grukit train``'s forecast job: forecast a real series with a GRU, next to the
classical forecasters of baselines.py (persistence, seasonal naive, damped Holt-Winters,
ARIMA) on the same test points.

With no config the job forecasts the weekly Mauna Loa CO2 series shipped in the
package, one week ahead (job.py lists the config's fields). The forecaster it reports
as "grukit":

* the network forecasts the change from a reference forecast of the target, in log
  units for a positive series: the window's last value, the value one season before
  the target, or damped Holt-Winters' forecast (fitted on the training part; ES-RNN's
  idea), whichever is best on the validation part. Each window is taken relative to
  that reference and scaled by the spread of the training part's changes, so a trend
  that leaves the training range, as CO2's does, stays within what the network has seen;
* its forecast is then combined with Holt-Winters', by Bates and Granger's inverse-MSE
  weights on the validation part shrunk towards equal weights (_network_weight).

Nothing is chosen or fitted on the test part. The report gives the network alone too.
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

def _forecaster(weight: float) -> str:
    """What `grukit train` reports as "grukit": the network's weight next to Holt-Winters'."""
    if weight == 1.0:
        return "the network alone (damped Holt-Winters did not run)"
    return f"{weight:.2f} x the network + {1 - weight:.2f} x damped Holt-Winters"


SHRINK = 10  # pseudo-points of equal weight (below)


def _network_weight(net_val: np.ndarray, ets_val: Optional[np.ndarray], truth_val: np.ndarray) -> float:
    """The network's weight in the forecaster next to damped Holt-Winters: Bates and
    Granger's inverse-MSE weight on the validation part, shrunk towards equal weights as if
    SHRINK more points had found the two equal (few validation points estimate a weight
    poorly, and equal weights are hard to beat: the forecast-combination puzzle). 1 when
    Holt-Winters did not run."""
    if ets_val is None:
        return 1.0
    mse_net = float(((net_val - truth_val) ** 2).mean()) + 1e-300
    mse_ets = float(((ets_val - truth_val) ** 2).mean()) + 1e-300
    fitted = (1 / mse_net) / (1 / mse_net + 1 / mse_ets)
    n = len(truth_val)
    return round((n * fitted + SHRINK * 0.5) / (n + SHRINK), 4)


REFERENCES = {"last": "the window's last value", "season": "the value one season before the target",
              "ets": "damped Holt-Winters' forecast (fitted on the training part)"}


def _references(values: np.ndarray, target_at: np.ndarray, horizon: int, season: int, window: int,
                ets: Optional[np.ndarray], log_scale: bool) -> dict[str, np.ndarray]:
    """The forecasts (N, C) the network may learn to correct (it forecasts the change from
    one of them, in log units for a positive series): the window's last value, the value
    one season before the target when that is inside the window, and damped Holt-Winters'
    forecast (ES-RNN's idea: exponential smoothing takes level and season, the network the
    rest). The job takes the one with the lowest RMSE on the validation part."""
    refs = {"last": values[target_at - horizon]}
    lag = baselines.seasonal_lag(horizon, season)
    if season > 1 and lag != horizon and lag <= window + horizon - 1:
        refs["season"] = values[target_at - lag]
    if ets is not None and np.isfinite(ets).all() and (not log_scale or (ets > 0).all()):
        refs["ets"] = ets
    return refs


def _reference(info: dict, x: np.ndarray, values: np.ndarray, target_at: np.ndarray) -> np.ndarray:
    """For `grukit predict`: the saved model's reference forecast of every window's target
    (Holt-Winters refitted on the series given)."""
    horizon, kind = info["horizon"], info.get("reference", "last")
    if kind == "ets":
        return np.stack([baselines._ets(values[:, j], target_at, horizon, info["season"], len(values))[0]
                         for j in range(values.shape[1])], axis=1)
    lag = baselines.seasonal_lag(horizon, info["season"]) if kind == "season" else horizon
    return x[:, info["window"] - 1 - (lag - horizon), :]


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
    parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
             "test": slice(n_train + n_val, n)}
    # how the network sees the series, chosen on the training and validation parts only
    fit_end = int(target_at[n_train - 1]) + 1  # the classical methods see the training part only
    log_scale = bool((values > 0).all())  # a positive series: the network sees its logarithm
    ets_all, ets_about = baselines.ets_forecasts(values, target_at, d.horizon, d.season, fit_end)
    refs = _references(values, target_at, d.horizon, d.season, d.window, ets_all, log_scale)
    val_rows = parts["val"]
    reference = min(refs, key=lambda k: np.sqrt(((refs[k][val_rows] - y[val_rows]) ** 2).mean()))
    ref = np.log(refs[reference]) if log_scale else refs[reference]  # (N, C)
    xs, ys = (np.log(x), np.log(y)) if log_scale else (x, y)
    scale = (ys[:n_train] - ref[:n_train]).std(0) + 1e-8  # fitted on the training part only
    x_rel = ((xs - ref[:, None, :]) / scale).astype("float32")
    y_rel = ((ys - ref) / scale).astype("float32")

    model = Sequential([*gru_stack(job), L.Dense(len(d.target_columns))])
    model.compile("adam", "mse", learning_rate=t.learning_rate, device=t.device)
    out_dir = output_dir(job, resume)
    log(f"grukit train: {source}, {len(values)} steps, {n} windows of {d.window} -> "
        f"{n_train} train / {n_val} validation / {n_test} test (in time order); output in {out_dir}")
    start = time.perf_counter()
    history = fit(model, job, out_dir, resume, x_rel[parts["train"]], y_rel[parts["train"]],
                  (x_rel[parts["val"]], y_rel[parts["val"]]), log)
    train_seconds = time.perf_counter() - start

    test, val = parts["test"], parts["val"]

    def network(rows: slice) -> np.ndarray:
        pred = ref[rows] + model.predict(x_rel[rows]) * scale
        return np.exp(pred) if log_scale else pred

    truth = y[test]
    lag = baselines.seasonal_lag(d.horizon, d.season)
    if (target_at[test] - lag < 0).any():
        raise ValueError(f"data.season={d.season} reaches before the series starts for test targets")
    metrics = {
        "data": source, "window": d.window, "horizon": d.horizon, "season": d.season,
        "network_sees": {"log": log_scale, "reference": REFERENCES[reference]},
        "windows": {"train": n_train, "val": n_val, "test": n_test},
        "epochs_run": len(history.history["loss"]), "train_seconds": round(train_seconds, 2),
    }
    if not distributed.is_main():  # under torchrun, process 0 fits the baselines and writes
        return {**metrics, "output_dir": out_dir}
    # the classical methods, fitted on the training part only (up to its last target), on the
    # validation targets (to choose the forecaster) and the test targets (to compare)
    log(f"fitting ARIMA on the training part ({fit_end} steps) ...")
    both, fitted = baselines.forecasts(values, target_at[n_train:], d.horizon, d.season, fit_end,
                                       fitted=("arima",))
    if ets_all is not None:
        both["ets"] = ets_all[n_train:]
    fitted["ets"] = ets_about
    both = {k: both[k] for k in baselines.METHODS if k in both}
    classical = {k: v[n_val:] for k, v in both.items()}
    weight = _network_weight(network(val), both["ets"][:n_val] if "ets" in both else None, y[val])
    pred_net = network(test)
    pred = pred_net if weight == 1.0 else weight * pred_net + (1 - weight) * classical["ets"]
    mase_scale = baselines.mase_scale(values[:fit_end], d.season)
    metrics["forecaster"] = _forecaster(weight)
    metrics["grukit"] = baselines.accuracy(pred, truth, mase_scale)
    metrics["gru"] = baselines.accuracy(pred_net, truth, mase_scale)
    for name, forecast in classical.items():
        metrics[name] = baselines.accuracy(forecast, truth, mase_scale)
    metrics["classical"] = fitted
    metrics["verdict"] = baselines.verdict({k: metrics[k] for k in ("grukit", *classical)}, ours="grukit",
                                           label="grukit's forecaster")
    log(f"\ntest set ({n_test} windows, {times[target_at[test][0]]} .. {times[target_at[test][-1]]}), "
        f"{d.horizon} step{'s' if d.horizon > 1 else ''} ahead:")
    log(f"  {'':<16}{'RMSE':>10}{'MAE':>10}{'MASE':>9}{'sMAPE %':>9}")
    for name in ("grukit", "gru", *classical):
        m = metrics[name]
        log(f"  {name:<16}{m['rmse']:>10.4f}{m['mae']:>10.4f}{m['mase']:>9.3f}{m['smape']:>9.3f}")
    log(f"  grukit: {metrics['forecaster']} (chosen on the validation part); gru: the network alone")
    for name in ("ets", "arima"):
        about = fitted.get(name)
        if isinstance(about, dict):
            about = f"{about['model']} ({about['seconds']} s)"
        log(f"  {name}: {about}")
    log(f"  {metrics['verdict']['line']}")

    job_info = {"kind": "forecast", "window": d.window, "horizon": d.horizon, "scale": scale.tolist(),
                "log": log_scale, "reference": reference, "network_weight": weight, "season": d.season,
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
    log_scale = info.get("log", False)
    if log_scale and not (values > 0).all():
        raise ValueError(f"{input_path!r}: the model was trained on the logarithm of a positive series; "
                         "this series has values <= 0")
    weight = info.get("network_weight", 1.0)
    # Holt-Winters, fitted on the series given, where the model uses it (once for both uses)
    ets = _reference({**info, "reference": "ets"}, x, values, target_at) if weight < 1.0 else None
    reuse = ets is not None and info.get("reference") == "ets"
    ref = ets if reuse else _reference(info, x, values, target_at)
    if log_scale:
        x = np.log(np.where(x > 0, x, 1.0))  # (the padding past the end is never read)
        ref = np.log(ref)
    pred = ref + model.predict(((x - ref[:, None, :]) / scale).astype("float32")) * scale
    pred = np.exp(pred) if log_scale else pred
    if ets is not None:
        pred = weight * pred + (1 - weight) * ets
    output_path = output_path or os.path.splitext(input_path)[0] + ".forecast.csv"
    with open(output_path, "w") as f:
        names = [f"{c}_forecast_{info['horizon']}_ahead" for c in info["target_columns"]]
        f.write(",".join(["window_end", *names]) + "\n")
        for i, row in enumerate(pred):
            end = target_at[i] - info["horizon"]
            f.write(",".join([times[end], *[f"{v:.6g}" for v in row]]) + "\n")
    log(f"wrote {len(pred)} forecasts to {output_path}")
    return output_path
