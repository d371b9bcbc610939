"""``grukit train``'s forecast job: forecast a real series with a GRU, next to the
classical forecasters of baselines.py (persistence, seasonal naive, damped Holt-Winters,
ARIMA) on the same test points.

With no config the job forecasts the weekly Mauna Loa CO2 series shipped in the
package, one week ahead (job.py lists the config's fields). The forecaster it reports
as "grukit":

* the network forecasts the change from a reference forecast of the target, in log
  units for a positive series: the window's last value, the value one season before
  the target, or damped Holt-Winters' forecast (fitted on the training part; ES-RNN's
  idea). Two networks are trained (from the same seed): one on the reference that is
  best alone on the validation part (a hybrid, as ES-RNN), one on the last value (the
  plain network); the one whose forecasts are better on the validation part is kept
  (_on_reference). Each window is taken relative to
  that reference and scaled by the spread of the training part's changes, so a trend
  that leaves the training range, as CO2's does, stays within what the network has seen;
* its forecast is then averaged with damped Holt-Winters', ARIMA's and the pretrained
  network's (pretrained.py: GRUs trained once on synthetic series, shipped with grukit,
  fitted to nothing here), leaving out whichever of the network, Holt-Winters and ARIMA is
  worst on the validation part (_weights; the pretrained network is always kept, and weighs
  up to twice as much as a fitted part where the validation part is short); the longer the
  validation part, the more the weights follow each part's errors there (inverse MSE).

Nothing is chosen or fitted on the test part. With a horizon h > 1 a window's targets run h - 1
steps past its origin, so the last h - 1 windows before the test part would hold some of its
first targets: they are left out (``split``: a gap between validation and test, taken from the
training part), and the validation part's targets all come before the test part's first. The
report gives the network alone and the pretrained network alone too.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from .. import datasets, seeding
from ..training import callbacks as cbks
from ..training import distributed, loading
from ..training import layers as L
from ..training.sequential import Sequential
from . import baselines, pretrained, seasons
from .job import (
    JobConfig,
    checkpoint_tag,
    fit,
    gru_stack,
    output_dir,
    read_series,
    target_columns,
    write_outputs,
)

# ------------------------------------------------------------------------ the job

NAMES = {"network": "the network", "ets": "damped Holt-Winters", "arima": "ARIMA",
         "pretrained": "the pretrained network"}


def _forecaster(weights: dict[str, float]) -> str:
    """What `grukit train` reports as "grukit": the weights of its parts."""
    if set(weights) == {"network"}:
        return "the network alone (the classical methods did not run)"
    left_out = [NAMES[k] for k, w in weights.items() if w == 0]
    return (" + ".join(f"{w:.2f} x {NAMES[k]}" for k, w in weights.items() if w)
            + (f" ({', '.join(left_out)}: worst on the validation part, left out)" if left_out else ""))


# the pretrained network's weight in the forecaster's average, in parts (_weights): 1 + PRIOR / (PRIOR +
# the validation windows), 1.87 on 3 windows, 1.5 on 20, 1.08 on CO2's 223
PRIOR = 20
# the validation windows at which the forecaster's weights are half the rule's and half fitted to the
# validation errors (inverse MSE): 0.03 fitted on 3 windows, 0.69 on CO2's 223, 0.95 on 2000 (_weights)
FIT_HALF = 100


def _weights(val: dict[str, np.ndarray], truth_val: np.ndarray,
             scale: Optional[np.ndarray] = None) -> dict[str, float]:
    """The forecaster's weights on its parts (the network, damped Holt-Winters and ARIMA where they
    ran, and the pretrained network). The rule: with three parts or more, the fitted part worst on
    the validation part (by its MSE there) gets none, the others share the weight, the pretrained
    network counting as 1 + PRIOR / (PRIOR + n) parts for n validation windows (with all four
    parts and 3 windows: 0.48 to it, 0.26 to each fitted part kept; on a long validation part it
    counts about once); equal weights on two parts. Then, as validation grows, the weights move
    towards weights fitted to it: with n windows, n / (n + FIT_HALF) of the weight is shared among
    the parts the rule kept in inverse proportion to their validation MSE (Bates and Granger 1969).

    Why: the pretrained network is always kept and weighs most where validation is short: it is
    fitted to nothing of the series, over the suite's 37 series and the 38 of its check set it is
    the best single part (benchmarks/forecast_suite.py), and a few validation points (3-11 on
    short series) tell against it more often than the test part bears out; PRIOR (20, chosen on
    both sets' recorded parts) acts as a prior worth that many validation windows. Few validation
    points estimate fitted weights poorly and equal weights are hard to beat (the forecast-
    combination puzzle; fitted weights alone: 0.999 / 0.995 and 1.035 / 1.073 below), but one part
    can be far off on a series (ARIMA on a multiplicative one): leaving out the worst keeps the
    average from it. Thousands of validation windows (a half-hourly series) estimate them well,
    and there equal weights waste a part that is twice as good as the others (the half-hourly
    electricity demand of `taylor`, 48 steps ahead: the network's RMSE is half the others', and
    the rule's average 1.29 times its own); FIT_HALF (100, chosen on the recorded parts of the
    sets of docs/results.md and six long series, session 23) moves less than 0.005 on the suite
    and the check set, whose validation parts are 2-223 windows (0.993 / 0.981 and 1.013 / 1.039),
    and gains on the long series (97-1746 windows): 0.879 / 0.933 -> 0.870 / 0.890. Geometric
    means of RMSE over each series' best classical method (one step / many steps ahead; suite,
    then check set; session 22): the rule alone 0.993 / 0.980 and 1.013 / 1.034; the pretrained
    network counting once 0.996 / 0.988 and 1.029 / 1.049, twice 0.993 / 0.977 and 1.005 / 1.022
    (but CO2 0.381, above ARIMA's 0.379); the worst of all four left out 1.005 / 1.001 and 1.044 /
    1.088; equal quarters 1.027 / 1.032 and 1.089 / 1.041; inverse-MSE weights 0.999 / 0.995 and
    1.035 / 1.073; the pretrained network alone 1.022 / 0.989 and 0.997 / 1.026. ``scale`` (C,):
    each column's errors are divided by it first (MASE's scale), so that on a CSV of several
    columns the one in the largest units does not choose for all; one column: no change."""
    scale = np.ones(truth_val.shape[-1]) if scale is None else np.asarray(scale, dtype=np.float64)
    mse = {k: float((((f - truth_val) / scale) ** 2).mean()) for k, f in val.items()}
    mse = {k: m if np.isfinite(m) else np.inf for k, m in mse.items()}  # a part that failed: the worst
    n = len(truth_val)
    if len(val) < 3:
        rule = {k: 1 / len(val) for k in val}
    else:
        fitted = {k: m for k, m in mse.items() if k != "pretrained"}
        worst = max(fitted, key=fitted.get)
        pretrained = 1 + PRIOR / (PRIOR + n)
        share = {k: (pretrained if k == "pretrained" else 1.0) for k in val if k != worst}
        total = sum(share.values())
        rule = {k: share.get(k, 0.0) / total for k in val}
    # inverse MSE over the parts kept, relative to the best one's (a part exact on validation: all)
    floor = {k: max(mse[k], np.finfo(float).tiny) for k, w in rule.items() if w}
    least = min(floor.values())
    inverse = {k: least / m if np.isfinite(least) else 1.0 for k, m in floor.items()}
    fit = n / (n + FIT_HALF)
    return {k: (1 - fit) * w + fit * inverse.get(k, 0.0) / sum(inverse.values()) for k, w in rule.items()}


def _combine(weights: dict[str, float], parts: dict[str, np.ndarray]) -> np.ndarray:
    """The weighted sum of the parts (a part left out need not be there)."""
    return sum(w * parts[k] for k, w in weights.items() if w)


REFERENCES = {"last": "the window's last value", "season": "the value one season before the target",
              "ets": "damped Holt-Winters' forecast (fitted on the training part)"}
LEVEL = 0.9  # the prediction intervals' nominal coverage
Z80 = 1.2815515655446004  # models saved before the intervals' level was saved: 80%, normal


def _t_quantile(level: float, n: int) -> float:
    """The (1 + level) / 2 quantile of Student's t with n degrees of freedom: the half-width,
    in estimated sigmas, of a ``level`` interval for a new mean-zero normal error whose
    spread was estimated from n errors. scipy's where it is installed (it comes with
    statsmodels), else Cornish-Fisher's expansion (at 90%: 1.8% low at n = 3, 0.1% at 9)."""
    v = max(int(n), 1)
    try:
        from scipy.stats import t
    except ImportError:
        from statistics import NormalDist

        z = NormalDist().inv_cdf((1 + level) / 2)
        return z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
    return float(t.ppf((1 + level) / 2, v))


def _sigma(err_val: np.ndarray, err_ets_train: Optional[np.ndarray]) -> np.ndarray:
    """The forecast errors' spread per step and column (h, C): the forecaster's RMS error on
    the validation part, shrunk towards damped Holt-Winters' RMS error on the training
    windows (their geometric mean). The validation part is short (10% of the windows: a few
    points on a short series) and the forecaster was chosen on it, so its spread alone is
    noisy and low; Holt-Winters' errors over the much longer training part (its few
    parameters fitted there) are a steady estimate of the same order. On the first 26 series of
    benchmarks/forecast_suite.py the validation spread alone covered 0.84 (one step) and
    0.82 (multi-step) of the test points with nominal 90% intervals; shrunk, 0.92 and 0.87."""
    val = np.sqrt((err_val ** 2).mean(0))
    if err_ets_train is None:
        return val + 1e-12
    ok = np.isfinite(err_ets_train).all(axis=tuple(range(1, err_ets_train.ndim)))
    if ok.sum() < 10:
        return val + 1e-12
    train = np.sqrt((err_ets_train[ok] ** 2).mean(0))
    return np.sqrt(val * train) + 1e-12


def _interval(pred: np.ndarray, half: np.ndarray, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """The interval's bounds around pred: +- half, or for a positive series (whose errors
    grow with its level) a factor exp(+-half), half in log units."""
    if log:
        return pred * np.exp(-half), pred * np.exp(half)
    return pred - half, pred + half


def _references(values: np.ndarray, origins: np.ndarray, steps: int, season: int, window: int,
                ets: Optional[np.ndarray], log_scale: bool, known: int) -> dict[str, np.ndarray]:
    """The forecasts (N, steps, C) the network may learn to correct (it forecasts the change
    from one of them, in log units for a positive series): the window's last value, the
    value one season before each target when that is inside the window, and damped
    Holt-Winters' forecast (ES-RNN's idea: exponential smoothing takes level and season,
    the network the rest). The job trains a network on the one best alone on the validation
    part and one on the last value, and keeps the better; whether Holt-Winters' may serve is
    judged on the first ``known`` windows (training and validation) only."""
    k = np.arange(1, steps + 1)
    refs = {"last": np.repeat(values[origins][:, None, :], steps, axis=1)}
    lags = np.array([baselines.seasonal_lag(j, season) for j in k])
    if season > 1 and (lags != k).any() and (lags - k <= window - 1).all():
        refs["season"] = values[origins[:, None] + k - lags]
    if ets is not None and np.isfinite(ets[:known]).all() and (not log_scale or (ets[:known] > 0).all()):
        refs["ets"] = ets
    return refs


def _reference(info: dict, x: np.ndarray, values: np.ndarray, origins: np.ndarray, steps: int) -> np.ndarray:
    """For `grukit predict`: the saved model's reference forecasts (N, steps, C) from each
    window x (its last value is values[origin]); Holt-Winters is refitted on the series given."""
    kind, season = info.get("reference", "last"), info.get("season", 1)
    if kind == "ets":
        return np.stack([baselines._ets(values[:, j], origins, steps, season, len(values))[0]
                         for j in range(values.shape[1])], axis=2)
    k = np.arange(1, steps + 1)
    lags = np.array([baselines.seasonal_lag(j, season) for j in k]) if kind == "season" else k
    return x[:, x.shape[1] - 1 - (lags - k), :]


def windows(values: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X (N, window, C), the targets (N, horizon, C): the `horizon` steps after each window's
    end, and each window's last index in the series (its forecasts' origin)."""
    n = len(values) - window - horizon + 1
    if n <= 0:
        raise ValueError(f"the series has {len(values)} steps: shorter than one window plus the horizon "
                         f"({window} + {horizon}); lower data.window or use a longer series")
    origins = np.arange(n) + window - 1
    idx = origins[:, None] + np.arange(-window + 1, 1)[None, :]
    return values[idx], values[origins[:, None] + np.arange(1, horizon + 1)[None, :]], origins


def split(n: int, horizon: int, job: JobConfig) -> tuple[int, int, int, int]:
    """The n windows in time order: (training, validation, gap, test) counts. The test part is
    the last ``split.test_fraction`` of the windows and the validation part the
    ``split.val_fraction`` before it (one window each at least), less a gap of horizon - 1
    windows between the two: a window's targets are the horizon steps after its origin, so
    without the gap the last validation windows' targets would be the first test windows'
    (their values would choose the forecaster's parts, stop the network's training and size
    its intervals)."""
    n_test = max(1, int(n * job.split.test_fraction))
    n_val, gap = max(1, int(n * job.split.val_fraction)), horizon - 1
    return n - n_test - gap - n_val, n_val, gap, n_test


# the training windows a default window leaves at least, where the series allows (_fit_window)
MIN_TRAIN = 3


def _fit_window(window: int, length: int, job: JobConfig) -> int:
    """The default window, shortened (to 3 steps at least) until the split leaves MIN_TRAIN
    training windows: a yearly series of 19 values forecast 6 steps ahead has windows of 3
    (11 windows: 3 training, 1 validation, 5 left out, 2 test), where a window of 6 left one."""
    h = job.data.horizon
    while window > 3 and split(length - window - h + 1, h, job)[0] < MIN_TRAIN:
        window -= 1
    return window


def _inputs(xs: np.ndarray, ref: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """What the network reads: each window relative to its first step's reference, scaled
    by the first step's spread."""
    return ((xs - ref[:, :1, :]) / scale[0]).astype("float32")


def _network(model: Sequential, xs: np.ndarray, ref: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The network's forecasts (N, steps, C), in the units it sees (logs for a positive
    series), from windows xs and references ref in those units."""
    n, steps, c = ref.shape  # (the first `steps` of the trained horizon)
    return ref + model.predict(_inputs(xs, ref, scale)).reshape(n, -1, c)[:, :steps] * scale[:steps]


class _Net(NamedTuple):
    model: Sequential
    ref: np.ndarray  # (N, h, C) the reference forecasts, in the units the network sees
    scale: np.ndarray  # (h, C)
    history: Any
    seconds: float
    val_pred: np.ndarray  # (n_val, h, C) its forecasts of the validation part, in the series' units
    val_rmse: float  # their RMSE


def _on_reference(job: JobConfig, kind: str, forecast: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                  y: np.ndarray, log_scale: bool, rows: tuple[slice, slice], out_dir: str,
                  resume: Optional[str], holds: bool, log) -> _Net:
    """The network trained to forecast the change from one reference forecast (_references),
    and its RMSE on the validation part. The job trains two, on the reference best alone on
    validation and on the last value, and keeps the better on validation: the reference
    best alone is not always the one a network does best with (on the 37 series of
    benchmarks/forecast_suite.py, the network on the reference best alone gave 1.038 / 0.999
    times each series' best classical RMSE, one step / multi-step; the better of the two
    networks 1.016 / 0.982; a network on every reference, the best kept, 1.028 / 0.985).
    Each starts from the same seed. Each finished network is saved to
    out_dir/references/KIND.grukit; a resumed run takes those of the run it resumes, goes
    on with the one its checkpoint holds (checkpoint.json) and trains the rest."""
    train_rows, val = rows
    # (N, h, C); a Holt-Winters forecast <= 0 in the test part is taken as the least positive number
    ref = np.log(np.maximum(forecast, np.finfo(float).tiny)) if log_scale else forecast
    scale = (ys[train_rows] - ref[train_rows]).std(0) + 1e-8  # (h, C), fitted on the training part only
    n, h, c = ref.shape
    x_rel = _inputs(xs, ref, scale)
    y_rel = ((ys - ref) / scale).reshape(n, h * c).astype("float32")
    seeding.set_seed(job.train.seed, deterministic=torch.are_deterministic_algorithms_enabled())
    earlier = None if resume is None else os.path.join(os.path.dirname(os.path.abspath(resume)), "references",
                                                       f"{kind}.grukit")
    if earlier is not None and os.path.isfile(earlier):
        model = loading.load(earlier, device=job.train.device)
        saved = model.extra
        history = cbks.History()
        history.history = {k: list(v) for k, v in saved["history"].items()}
        history.epoch = list(range(len(history.history.get("loss", []))))
        seconds = float(saved["seconds"])
        log(f"\nthe network on {REFERENCES[kind]}: trained by the run resumed ({earlier})")
    else:
        model = Sequential([*gru_stack(job), L.Dense(h * c)])
        model.compile("adam", "mse", learning_rate=job.train.learning_rate, device=job.train.device)
        log(f"\nthe network on {REFERENCES[kind]}:")
        go_on = resume if holds else None  # the checkpoint is this network's
        history, seconds = fit(model, job, out_dir, go_on, x_rel[train_rows], y_rel[train_rows],
                               (x_rel[val], y_rel[val]), log, tag=kind)
        if distributed.is_main():
            os.makedirs(os.path.join(out_dir, "references"), exist_ok=True)
            model.save(os.path.join(out_dir, "references", f"{kind}.grukit"),
                       extra={"history": history.history, "seconds": seconds})
    pred = _network(model, xs[val], ref[val], scale)
    pred = np.exp(pred) if log_scale else pred
    return _Net(model, ref, scale, history, seconds, pred, float(np.sqrt(((pred - y[val]) ** 2).mean())))


def complete(times: list[str], values: np.ndarray, path: str, log) -> tuple[list[str], np.ndarray, list[str]]:
    """The series with the steps its time column skips put back (seasons.complete_steps), their
    values interpolated as gaps are, so that a window is consecutive steps and a season is a
    season's steps; and the stamps filled in (none: the series as it is)."""
    found = seasons.complete_steps(times)
    if found is None:
        return times, values, []
    full, index = found
    grid = np.full((len(full), values.shape[1]), np.nan)
    grid[index] = values
    given = set(index.tolist())
    filled = [full[j] for j in range(len(full)) if j not in given]
    log(f"{path}: the time column skips {len(filled)} step{'s' if len(filled) > 1 else ''} ("
        + ", ".join(filled[:3]) + (", ..." if len(filled) > 3 else "")
        + "): filled in by linear interpolation")
    return full, datasets.interpolate_gaps(grid), filled


def _has_times(job: JobConfig) -> bool:
    """Whether the series comes with time stamps to read its season from (a time column, or
    the shipped CO2 series' dates)."""
    return bool(job.data.time_column) or job.data.path == "co2"


def _season_and_window(job: JobConfig, times: list[str], values: np.ndarray) -> tuple[int, int, str]:
    """The job's season and window: as configured, or (0, the default) chosen from the time
    stamps or the autocorrelation (seasons.py), on the training part's share of the series
    only; a chosen season that the series is too short for is dropped (1)."""
    d = job.data
    if d.season:
        return d.season, d.window or _fit_window(seasons.default_window(d.season, len(values)), len(values),
                                                 job), "given"
    # the values before the test part's first target, whatever the window (split)
    known = max(3, int(len(values) * (1 - job.split.test_fraction)) - (d.horizon - 1))
    season, about = seasons.infer_season(times[:known], values[:known],
                                         has_times=_has_times(job))
    window = d.window or seasons.default_window(season, len(values))
    n_train = split(len(values) - window - d.horizon + 1, d.horizon, job)[0]
    if season > 1 and n_train + window < 2 * season:  # Holt-Winters needs two seasons to fit on
        season, about = 1, f"none: the season of {season} steps found {about} is too long for the series"
        window = d.window or seasons.default_window(season, len(values))
    return season, d.window or _fit_window(window, len(values), job), about


def run(job: JobConfig, log=print, resume: Optional[str] = None) -> dict[str, Any]:
    """Train, evaluate against the classical forecasters, write the outputs; returns metrics
    (train.run has seeded the generators and chosen the log)."""
    d = job.data
    filled: list[str] = []  # the steps the time column skipped, filled in (complete)
    if d.path == "co2":
        times, values = datasets.load_co2()
        source, names = "Mauna Loa weekly CO2 (shipped with grukit)", ["co2"]
    else:
        names = target_columns(d.path, d.time_column, d.target_columns)
        times, values = read_series(d.path, d.time_column, names)
        if d.time_column:
            seasons.check_order(times, d.path, d.time_column)
            times, values, filled = complete(times, values, d.path, log)
        source = d.path
    season, window, about_season = _season_and_window(job, times, values)
    # ARIMA's Fourier terms take the calendar's period (52.18 steps for a weekly series' year)
    period = seasons.period(times, season, has_times=_has_times(job))
    x, y, origins = windows(values, window, d.horizon)
    n, h = len(x), d.horizon
    n_train, n_val, gap, n_test = split(n, h, job)
    if n_train < 1:
        raise ValueError(f"{n} windows are too few to split into train, validation"
                         + (f", a gap of {gap} (horizon - 1)" if gap else "") + " and test ("
                         + ("data.window or " if d.window else "")
                         + "data.horizon lower, or a longer series)")
    if origins[n_train] + 1 - baselines.seasonal_lag(1, season) < 0:
        raise ValueError(f"data.season={season} reaches before the series starts for the validation "
                         "targets")
    train_rows, val, test = slice(0, n_train), slice(n_train, n_train + n_val), slice(n - n_test, n)
    scored = np.r_[np.arange(n_train, n_train + n_val), np.arange(n - n_test, n)]  # validation, then test
    # how the network sees the series, chosen on the training and validation parts only
    fit_end = int(origins[n_train - 1]) + h + 1  # the classical methods see the training part only
    flat = [j for j in range(values.shape[1]) if np.ptp(values[:fit_end, j]) == 0]
    if flat:
        raise ValueError(f"column {names[flat[0]]!r} holds one value, {values[0, flat[0]]:g}, through the "
                         f"training part (its first {fit_end} steps, to {times[fit_end - 1]}): nothing "
                         f"there to learn a forecast from")
    log_scale = bool((values[:fit_end] > 0).all())  # positive so far: the network sees logarithms
    if log_scale and not (values > 0).all():
        bad = int(np.flatnonzero((values <= 0).any(1))[0])
        raise ValueError(f"the series is positive in its training part, so the network works on its "
                         f"logarithm, but it is {values[bad].tolist()} at step {bad} ({times[bad]})")
    ets_all, ets_about = baselines.ets_forecasts(values, origins, h, season, fit_end)
    refs = _references(values, origins, h, season, window, ets_all, log_scale, n_train + n_val)
    xs, ys = (np.log(x), np.log(y)) if log_scale else (x, y)
    out_dir = output_dir(job, resume)
    log(f"grukit train: {source}, {len(values)} steps, season {season} ({about_season}), {n} windows of "
        f"{window} -> "
        f"{n_train} train / {n_val} validation / " + (f"{gap} left out (horizon - 1) / " if gap else "")
        + f"{n_test} test (in time order); output in {out_dir}")
    # two networks: on the reference forecast best alone on the validation part (the hybrid), and
    # on the window's last value (the plain network: the window as it is); the better one on
    # the validation part is kept (_on_reference)
    alone = min(refs, key=lambda k: np.sqrt(((refs[k][val] - y[val]) ** 2).mean()))
    kinds = [alone] + (["last"] if alone != "last" else [])
    log(f"the best reference forecast alone on the validation part: {REFERENCES[alone]}; a network on "
        + (f"it and one on {REFERENCES['last']}, the better kept" if len(kinds) > 1 else "it"))
    # the network a resumed checkpoint holds (checkpoint.json; without it, a run with one network)
    held = (checkpoint_tag(resume) or kinds[0]) if resume is not None else None
    nets = {kind: _on_reference(job, kind, refs[kind], xs, ys, y, log_scale, (train_rows, val), out_dir,
                                resume, held == kind, log) for kind in kinds}
    reference = min(nets, key=lambda k: nets[k].val_rmse)
    model, ref, scale, history = nets[reference].model, nets[reference].ref, nets[reference].scale, \
        nets[reference].history
    train_seconds = sum(net.seconds for net in nets.values())
    log("\nvalidation RMSE of each network: " + ", ".join(f"{k} {v.val_rmse:.4g}" for k, v in nets.items())
        + f"; kept: the network on {REFERENCES[reference]}")

    def network(rows: slice) -> np.ndarray:
        pred = _network(model, xs[rows], ref[rows], scale)
        return np.exp(pred) if log_scale else pred

    truth = y[test]
    metrics = {
        "data": source, "window": window, "horizon": h, "season": season,
        "season_from": about_season, "period": round(period, 6),
        "network_sees": {"log": log_scale, "reference": REFERENCES[reference],
                         "validation_rmse": {k: round(v.val_rmse, 6) for k, v in nets.items()}},
        "windows": {"train": n_train, "val": n_val, "gap": gap, "test": n_test},
        **({"filled_steps": filled} if filled else {}),
        "epochs_run": len(history.history["loss"]), "train_seconds": round(train_seconds, 2),
    }
    if not distributed.is_main():  # under torchrun, process 0 fits the baselines and writes
        return {**metrics, "output_dir": out_dir}
    # the classical methods, fitted on the training part only (up to its last target), on the
    # validation windows (to choose the forecaster) and the test windows (to compare)
    log(f"fitting ARIMA on the training part ({fit_end} steps) ...")
    both, fitted = baselines.forecasts(values, origins[scored], h, season, fit_end, fitted=("arima",),
                                       period=period)
    if ets_all is not None:
        both["ets"] = ets_all[scored]
    fitted["ets"] = ets_about
    both = {k: both[k] for k in baselines.METHODS if k in both}
    classical = {k: v[n_val:] for k, v in both.items()}
    # the pretrained network (pretrained.py): nothing fitted to this series; whether a season is
    # taken out is decided on the training part
    seasonal = pretrained.seasonal_columns(values[:fit_end], season, log_scale)
    others = {k: both[k] for k in ("ets", "arima") if k in both}
    others["pretrained"] = pretrained.forecasts(values, origins[scored], h, season, log_scale, seasonal)
    net_val = nets[reference].val_pred
    mase_scale = baselines.mase_scale(values[:fit_end], season)
    weights = _weights({"network": net_val, **{k: f[:n_val] for k, f in others.items()}}, y[val], mase_scale)
    pred_net = network(test)
    pred = _combine(weights, {"network": pred_net, **{k: f[n_val:] for k, f in others.items()}})
    # a 90% interval per step from the forecaster's errors on the validation part and Holt-Winters'
    # on the training part (_sigma; relative errors for a positive series; Student's t for a
    # spread estimated from n_val errors)
    val_pred = _combine(weights, {"network": net_val, **{k: f[:n_val] for k, f in others.items()}})

    def errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
        # (a Holt-Winters forecast at or below 0 on a training window overflows: _sigma leaves it out)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.log(truth / np.maximum(pred, np.finfo(float).tiny)) if log_scale else truth - pred

    sigma = _sigma(errors(val_pred, y[val]), None if ets_all is None else errors(ets_all[train_rows],
                                                                                 y[train_rows]))
    z = _t_quantile(LEVEL, n_val)
    metrics["forecaster"] = _forecaster(weights)
    metrics["grukit"] = baselines.accuracy(pred, truth, mase_scale)
    metrics["gru"] = baselines.accuracy(pred_net, truth, mase_scale)
    metrics["pretrained"] = baselines.accuracy(others["pretrained"][n_val:], truth, mase_scale)
    for name, forecast in classical.items():
        metrics[name] = baselines.accuracy(forecast, truth, mase_scale)
    metrics["classical"] = fitted
    if len(names) > 1:  # each column's own scores; RMSE over columns in other units says little
        each = {"grukit": pred, "gru": pred_net, "pretrained": others["pretrained"][n_val:], **classical}
        metrics["by_column"] = {
            col: {k: baselines.accuracy(f[..., j], truth[..., j], mase_scale[j:j + 1])
                  for k, f in each.items()}
            for j, col in enumerate(names)}
    # the verdict: RMSE on one column; MASE (each column's errors over its own scale) on several
    metrics["verdict"] = baselines.verdict({k: metrics[k] for k in ("grukit", *classical)}, ours="grukit",
                                           metric="rmse" if len(names) == 1 else "mase",
                                           label="grukit's forecaster")
    best = metrics["verdict"]["best_classical"]
    if h > 1:
        by_step = lambda f: [round(float(v), 6) for v in np.sqrt(((f - truth) ** 2).mean((0, 2)))]  # noqa: E731
        metrics["rmse_by_step"] = {"grukit": by_step(pred), best: by_step(classical[best])}
    lower, upper = _interval(pred, z * sigma, log_scale)
    inside = (lower <= truth) & (truth <= upper)
    metrics["interval"] = {"level": LEVEL, "test_coverage": round(float(inside.mean()), 4),
                           "how": f"+-{z:.3f} sigma (Student's t, {n_val} validation errors), sigma "
                                  "per step = the geometric mean of the forecaster's RMS error on the "
                                  "validation part and damped Holt-Winters' on the training part"
                                  + (", relative (in logs: the series is positive)" if log_scale else "")}
    first, last = times[origins[test][0] + 1], times[origins[test][-1] + h]
    log(f"\ntest set ({n_test} windows, targets {first} .. {last}), "
        + (f"steps 1..{h} ahead (all steps scored):" if h > 1 else "1 step ahead:"))
    log(f"  {'':<16}{'RMSE':>10}{'MAE':>10}{'MASE':>9}{'sMAPE %':>9}")
    for name in ("grukit", "gru", "pretrained", *classical):
        m = metrics[name]
        log(f"  {name:<16}{m['rmse']:>10.4f}{m['mae']:>10.4f}{m['mase']:>9.3f}{m['smape']:>9.3f}")
    if len(names) > 1:
        methods = ("grukit", "gru", "pretrained", *classical)
        log(f"  {'RMSE by column':<16}" + "".join(f"{k:>15}" for k in methods))
        for col, scores in metrics["by_column"].items():
            log(f"  {col[:15]:<16}" + "".join(f"{scores[k]['rmse']:>15.4g}" for k in methods))
    log(f"  grukit: {metrics['forecaster']} (chosen on the validation part); gru: the network alone; "
        "pretrained: the pretrained network alone")
    for name in ("ets", "arima"):
        about = fitted.get(name)
        if isinstance(about, dict):
            about = f"{about['model']} ({about['seconds']} s)"
        log(f"  {name}: {about}")
    if h > 1:
        for name, rmse in metrics["rmse_by_step"].items():
            log(f"  RMSE by step, {name}: {' '.join(f'{v:.4g}' for v in rmse)}")
    log(f"  {LEVEL:.0%} interval coverage on the test part: {metrics['interval']['test_coverage']:.3f}")
    log(f"  {metrics['verdict']['line']}")

    job_info = {"kind": "forecast", "window": window, "horizon": h, "scale": scale.tolist(),
                "log": log_scale, "reference": reference, "weights": weights, "season": season,
                "period": period,
                "sigma": sigma.tolist(), "z": z, "level": LEVEL, "interval_log": log_scale,
                "pretrained_seasonal": seasonal, "time_column": d.time_column if d.path != "co2" else "date",
                "target_columns": names}
    what = "test part, 1 step ahead" + (f" (of {h} forecast)" if h > 1 else "")
    at = [times[i] for i in origins[test] + 1]
    write_outputs(out_dir, model, job_info, metrics, history, "forecast.png",
                  lambda path: _plot_forecast(path, at, truth[:, 0], pred[:, 0], lower[:, 0], upper[:, 0],
                                              classical[best][:, 0], best, names, what), log)
    # what each part forecast (not in metrics.json): benchmarks/forecast_suite.py --record keeps it
    parts = {"truth_val": y[val], "truth_test": truth, "log": log_scale, "values": values,
             "origins": origins[scored], "season": season, "pretrained_seasonal": seasonal,
             "val": {"network": net_val, **{k: v[:n_val] for k, v in both.items()},
                     "pretrained": others["pretrained"][:n_val]},
             "test": {"network": pred_net, **classical, "pretrained": others["pretrained"][n_val:]}}
    return {**metrics, "output_dir": out_dir, "parts": parts}


def _plot_forecast(path: str, times: list, truth: np.ndarray, pred: np.ndarray, lower: np.ndarray,
                   upper: np.ndarray, baseline: Optional[np.ndarray], baseline_name: str, names: list,
                   what: str, level: float = LEVEL) -> None:
    """truth and forecasts (T, C) with the interval [lower, upper] (T, C) at ``level``; NaN where
    one of them has no value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(names), 1, figsize=(10, 3.4 * len(names)), squeeze=False)
    steps = np.arange(len(times))
    for j, ax in enumerate(axes[:, 0]):
        ax.plot(steps, truth[:, j], label="truth" if baseline is not None else "the series", lw=1.2)
        ax.plot(steps, pred[:, j], label="grukit forecast", lw=1)
        ax.fill_between(steps, lower[:, j], upper[:, j], alpha=0.25,
                        label=f"{level:.0%} interval")
        if baseline is not None:
            ax.plot(steps, baseline[:, j], label=f"{baseline_name.replace('_', ' ')} (best classical)",
                    lw=0.8, alpha=0.8)
        ticks = np.unique(np.linspace(0, len(times) - 1, 6).astype(int))
        ax.set_xticks(ticks, [times[i] for i in ticks])
        ax.set_title(f"{names[j]}: {what}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _weights_of(info: dict) -> dict[str, float]:
    """The saved forecaster's weights (a model saved before ARIMA joined: network_weight)."""
    if "weights" in info:
        return info["weights"]
    w = info.get("network_weight", 1.0)
    return {"network": 1.0} if w == 1.0 else {"network": w, "ets": 1 - w}


def _other_parts(info: dict, values: np.ndarray, origins: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """The forecasts (N, steps, C) from the origins of the parts other than the network that
    the saved forecaster uses: damped Holt-Winters and ARIMA, each fitted (as in training) on
    the series given, and the pretrained network (its season taken out as in training)."""
    need = {k for k, w in _weights_of(info).items() if w} - {"network"}  # the parts left out are not run
    if info.get("reference") == "ets":
        need.add("ets")
    season = info.get("season", 1)
    out = {}
    if "pretrained" in need:
        out["pretrained"] = pretrained.forecasts(values, origins, steps, season, info.get("log", False),
                                                 info["pretrained_seasonal"])
    fits = {"ets": baselines._ets,
            "arima": lambda *a: baselines._arima(*a, period=info.get("period", season))}
    for k in sorted(need - {"pretrained"}):
        out[k] = np.stack([fits[k](values[:, j], origins, steps, season, len(values))[0]
                           for j in range(values.shape[1])], axis=2)
    return out


def _forecasts(model: Sequential, info: dict, values: np.ndarray, x: np.ndarray, origins: np.ndarray,
               steps: int, others: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
    """The saved forecaster's forecasts (N, steps, C) from windows x ending at origins, in
    the series' units (steps <= the trained horizon). ``others``: the other parts'
    forecasts from those origins (else made here from ``values``: _other_parts)."""
    if others is None:
        others = _other_parts(info, values, origins, steps)
    ref = others["ets"] if info.get("reference") == "ets" else _reference(info, x, values, origins, steps)
    scale = np.array(info["scale"])[:steps]
    if info.get("log", False):
        pred = np.exp(_network(model, np.log(np.where(x > 0, x, 1.0)), np.log(ref), scale))
    else:
        pred = _network(model, x, ref, scale)
    return _combine(_weights_of(info), {"network": pred, **others})


def predict(model: Sequential, info: dict, input_path: str, output_path: Optional[str] = None,
            log=print, steps: Optional[int] = None) -> str:
    """Forecasts for every complete window of a CSV series (steps 1..horizon after each
    window), or with ``steps`` the next N steps after the series' end with 90% intervals
    (recursively past the trained horizon); written to a CSV."""
    times, values = datasets.read_series(input_path, info["time_column"] or None, info["target_columns"])
    if info["time_column"]:
        seasons.check_order(times, input_path, info["time_column"])
        times, values, _ = complete(times, values, input_path, log)
    if info.get("log", False) and not (values > 0).all():
        raise ValueError(f"{input_path!r}: the model was trained on the logarithm of a positive series; "
                         "this series has values <= 0")
    h, window, names = info["horizon"], info["window"], info["target_columns"]
    output_path = output_path or os.path.splitext(input_path)[0] + ".forecast.csv"
    if steps is None:
        if len(values) < window:
            raise ValueError(f"{input_path!r} has {len(values)} rows: fewer than one window ({window})")
        origins = np.arange(window - 1, len(values))
        x = values[origins[:, None] + np.arange(-window + 1, 1)[None, :]]
        pred = _forecasts(model, info, values, x, origins, h)
        with open(output_path, "w") as f:
            f.write(",".join(["window_end", *[f"{c}_forecast_{k}_ahead" for k in range(1, h + 1)
                                              for c in names]]) + "\n")
            for i, o in enumerate(origins):
                f.write(",".join([times[o], *[f"{v:.6g}" for v in pred[i].ravel()]]) + "\n")
        log(f"wrote {len(pred)} forecasts to {output_path}")
        return output_path
    return _predict_ahead(model, info, times, values, steps, output_path, log)


def future_times(times: list[str], steps: int) -> list[str]:
    """The ``steps`` time stamps after the series' last, continuing its spacing (seasons.grid:
    numbers, dates or date-times a fixed time apart, dates a fixed number of months apart, quarter
    and month labels such as "1959Q1", "1987 Jan"); "" each where the spacing is not regular."""
    blank = [""] * steps
    found = seasons.grid(times) if len(times) >= 2 else None
    if found is None:
        return blank
    pos, make = found
    gaps = np.diff(pos)
    if not np.allclose(gaps, gaps[-1], rtol=1e-6, atol=1e-9) or gaps[-1] <= 0:
        return blank
    return [make(pos[-1] + k * gaps[-1]) for k in range(1, steps + 1)]


def _predict_ahead(model: Sequential, info: dict, times: list, values: np.ndarray, steps: int,
                   output_path: str, log) -> str:
    """The next ``steps`` values after the series' end: the trained horizon at a time, each
    block's forecasts appended to the series for the next (the other parts run on from
    the real data). The interval (90%; 80% for a model saved before the level was): the
    errors' spread per step (relative for a positive series, _sigma), growing as the square
    root of the step past the trained horizon."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    h, window, names = info["horizon"], info["window"], info["target_columns"]
    if len(values) < window:
        raise ValueError(f"the series has {len(values)} rows: fewer than one window ({window})")
    # the other parts run from the real data's end
    others_all = _other_parts(info, values, np.array([len(values) - 1]), steps)
    series = values.astype(np.float64)
    out: list = []
    while len(out) < steps:
        k, o = min(h, steps - len(out)), len(series) - 1
        others = {name: f[:, len(out):len(out) + k] for name, f in others_all.items()}
        last = series[None, o - window + 1:o + 1]
        pred = _forecasts(model, info, series, last, np.array([o]), k, others)
        out.extend(pred[0])
        series = np.concatenate([series, pred[0]])
    pred = np.array(out[:steps])
    sigma = np.array(info.get("sigma", [[0.0] * len(names)] * h))
    step = np.arange(1, steps + 1)
    grow = sigma[-1] * np.sqrt(step[h:, None] / h)
    level, z = info.get("level", 0.8), info.get("z", info.get("z80", Z80))
    half = z * np.concatenate([sigma[:min(h, steps)], grow])
    lower, upper = _interval(pred, half, info.get("interval_log", False))
    with open(output_path, "w") as f:
        pct = f"{round(level * 100)}"
        columns = [f"{c}{part}" for c in names for part in ("", f"_lower_{pct}", f"_upper_{pct}")]
        f.write(",".join(["step", "time", *columns]) + "\n")
        for i, when in enumerate(future_times(times, steps)):
            cells = [f"{v:.6g}" for j in range(len(names))
                     for v in (pred[i, j], lower[i, j], upper[i, j])]
            f.write(",".join([str(i + 1), when, *cells]) + "\n")
    plot = os.path.splitext(output_path)[0] + ".png"
    seen = values[-window:]  # the last window of the series, then the forecasts
    gap = np.full((steps, len(names)), np.nan)
    ahead = [t or f"+{i}" for i, t in zip(step, future_times(times, steps), strict=True)]
    _plot_forecast(plot, [*times[-window:], *ahead], np.concatenate([seen, gap]),
                   np.concatenate([np.full_like(seen, np.nan), pred]),
                   np.concatenate([np.full_like(seen, np.nan), lower]),
                   np.concatenate([np.full_like(seen, np.nan), upper]), None, "", names,
                   f"the {steps} steps after {times[-1]}, with {level:.0%} intervals", level)
    log(f"wrote {steps} forecasts after {times[-1]} with {level:.0%} intervals to {output_path} "
        f"(plot: {plot})")
    return output_path
