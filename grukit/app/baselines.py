"""The classical forecasters that every forecast report puts next to the GRU.

What a statistician would fit in a minute, each fitted on the training part of the
series only and then run over the whole series with those parameters fixed, so that
every test forecast uses the same past as the GRU's: from an origin o (the last step a
forecast may see), the forecasts of y[o+1] .. y[o+h]:

* ``persistence``: the last value, y[o].
* ``seasonal_naive``: the value one season before, y[o + k - m*ceil(k/m)] for step k.
* ``ets``: damped Holt-Winters exponential smoothing (statsmodels' ExponentialSmoothing,
  additive damped trend; additive or multiplicative season, the lower AIC; no season
  when the series is not seasonal or too short for two seasons). The fitted smoothing
  parameters and initial states are run forward by ``_holt_winters`` below, the same
  recursions as statsmodels' (checked against its fitted values in the tests).
* ``arima``: statsmodels' ARIMA, differenced once when the augmented Dickey-Fuller test
  does not reject a unit root (p > 0.05), with a drift or constant, the season as
  Fourier terms (up to 3 harmonics: the usual way with long seasons; of the calendar's
  period, 52.18 steps for a weekly series' year: seasons.period), orders p, q in
  0..2 chosen by AIC; then the fitted model filters the whole series
  (``results.apply``) and its h-step forecasts come from the filtered states.

``accuracy`` scores forecasts as the M competitions do: RMSE, MAE, MASE (the MAE over
the training part's in-sample seasonal-naive MAE) and sMAPE (percent).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Optional

import numpy as np

METHODS = ("persistence", "seasonal_naive", "ets", "arima")
FOURIER_MAX = 3


def seasonal_lag(horizon: int, season: int) -> int:
    """The seasonal-naive lag for a forecast ``horizon`` steps ahead: the last value in the
    same phase of the season that is at least ``horizon`` steps old."""
    season = max(1, season)
    return season * -(-horizon // season)


def _naive(values: np.ndarray, origins: np.ndarray, steps: int, lag) -> np.ndarray:
    at = origins[:, None] + np.arange(1, steps + 1)[None, :] - np.array([lag(k) for k in range(1, steps + 1)])
    if (at < 0).any():
        raise ValueError(f"a lag of {lag(steps)} steps reaches before the series starts for the first "
                         "targets")
    return values[at]  # (N, steps, C)


def forecasts(values: np.ndarray, origins: np.ndarray, steps: int, season: int, fit_end: int,
              fitted: tuple[str, ...] = ("ets", "arima"), period: Optional[float] = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every method's forecasts (N, steps, C) of values[o + 1 .. o + steps] from each origin
    o, fitted on values[:fit_end] (the naive ones, and those of ``fitted``). ``period``: the
    season's length for ARIMA's Fourier terms (None: the season). Returns the forecasts and,
    per method, what was fitted (or why it could not run)."""
    values = np.asarray(values, dtype=np.float64)
    origins = np.asarray(origins)
    out = {"persistence": _naive(values, origins, steps, lambda k: k),
           "seasonal_naive": _naive(values, origins, steps, lambda k: seasonal_lag(k, season))}
    info: dict[str, Any] = {"persistence": "the last value",
                            "seasonal_naive": f"the value a season ({max(1, season)} steps) before, at least "
                                              "as old as the forecast's origin"}
    for name, method in (("ets", _ets), ("arima", _arima)):
        if name not in fitted:
            continue
        start = time.perf_counter()
        extra = {"period": period} if name == "arima" else {}
        try:
            cols, models = zip(*(method(values[:, j], origins, steps, season, fit_end, **extra)
                                 for j in range(values.shape[1])), strict=True)
        except ImportError:
            info[name] = "not run: statsmodels is not installed (pip install 'grukit[app]')"
            continue
        except Exception as exc:  # a series the method cannot fit: reported, the job goes on
            info[name] = f"not run: {type(exc).__name__}: {exc}"
            continue
        out[name] = np.stack(cols, axis=2)
        info[name] = {"model": list(models) if len(models) > 1 else models[0],
                      "seconds": round(time.perf_counter() - start, 2)}
    return out, info


# ------------------------------------------------------------------ Holt-Winters

def ets_forecasts(values: np.ndarray, origins: np.ndarray, steps: int, season: int, fit_end: int
                  ) -> tuple[Optional[np.ndarray], Any]:
    """Damped Holt-Winters' forecasts (N, steps, C) from each origin, fitted on
    values[:fit_end], and what was fitted; (None, why) when it cannot run."""
    got, info = forecasts(values, origins, steps, season, fit_end, fitted=("ets",))
    return got.get("ets"), info["ets"]


def _ets(y: np.ndarray, origins: np.ndarray, steps: int, season: int, fit_end: int) -> tuple[np.ndarray, str]:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    train = y[:fit_end]
    kinds = [None]
    if season > 1 and fit_end >= 2 * season:
        kinds = ["add", "mul"] if (train > 0).all() else ["add"]
    best = None
    for kind in kinds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = ExponentialSmoothing(train, trend="add", damped_trend=True, seasonal=kind,
                                       seasonal_periods=season if kind else None,
                                       initialization_method="estimated").fit()
        if best is None or fit.aic < best[1].aic:
            best = (kind, fit)
    kind, fit = best
    p = fit.params
    seasons = np.asarray(p["initial_seasons"], dtype=np.float64) if kind else None
    pred = _holt_winters(y, p["smoothing_level"], p["smoothing_trend"], p["smoothing_seasonal"] or 0.0,
                         p["damping_trend"], p["initial_level"], p["initial_trend"], seasons, kind, origins,
                         steps)
    named = {None: "no", "add": "additive", "mul": "multiplicative"}[kind]
    return pred, f"damped trend, {named} season"


def _holt_winters(y: np.ndarray, alpha: float, beta: float, gamma: float, phi: float, level: float,
                  trend: float, seasons: Optional[np.ndarray], kind: Optional[str], origins: np.ndarray,
                  steps: int) -> np.ndarray:
    """Forecasts (N, steps) of y[o + 1 .. o + steps] from each origin o (-1: before the
    first value; o may be the last value, or past it: nothing after it is read) by damped
    Holt-Winters with these parameters and initial states (statsmodels' recursions and
    parametrisation)."""
    m = 0 if seasons is None else len(seasons)
    s = None if seasons is None else seasons.copy()  # s[t % m]: the latest estimate for t's phase
    damp = np.cumsum(phi ** np.arange(1, steps + 1))  # phi + ... + phi^k for each step k
    k = np.arange(1, steps + 1)
    rows: dict[int, list[int]] = {}
    for row, o in enumerate(np.asarray(origins)):
        rows.setdefault(int(o), []).append(row)
    pred = np.empty((len(origins), steps))
    l, b = float(level), float(trend)

    def ahead(t: int) -> np.ndarray:  # the forecasts of y[t + 1 .. t + steps] from the state after y[t]
        base = l + damp * b
        if m == 0:
            return base
        phase = s[(t + k) % m]
        return base * phase if kind == "mul" else base + phase

    for t in range(-1, max(rows) + 1):
        if t >= 0:
            prior = l + phi * b
            if m == 0:
                l = alpha * y[t] + (1 - alpha) * prior
            elif kind == "mul":
                l = alpha * y[t] / s[t % m] + (1 - alpha) * prior
                s[t % m] = gamma * y[t] / prior + (1 - gamma) * s[t % m]
            else:
                l = alpha * (y[t] - s[t % m]) + (1 - alpha) * prior
                s[t % m] = gamma * (y[t] - prior) + (1 - gamma) * s[t % m]
            b = beta * (l - (prior - phi * b)) + (1 - beta) * phi * b
        if t in rows:
            pred[rows[t]] = ahead(t)
    return pred


# ------------------------------------------------------------------------ ARIMA

def _fourier(n: int, season: int, period: Optional[float] = None) -> Optional[np.ndarray]:
    """Sines and cosines of the season (up to FOURIER_MAX harmonics) at steps 0 .. n-1, of
    ``period`` steps (None: ``season``); None without a season."""
    k = min(FOURIER_MAX, season // 2)
    if season <= 1 or k < 1:
        return None
    t = np.arange(n)[:, None] * np.arange(1, k + 1)[None, :] * 2 * np.pi / (period or season)
    return np.concatenate([np.sin(t), np.cos(t)], axis=1)


def _arima(y: np.ndarray, origins: np.ndarray, steps: int, season: int, fit_end: int,
           period: Optional[float] = None) -> tuple[np.ndarray, str]:
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.stattools import adfuller

    train = y[:fit_end]
    # targets past the series' end (grukit predict --steps): the filter runs on over missing values
    n = max(len(y), int(np.max(origins)) + steps + 1)
    ext = np.concatenate([y, np.full(n - len(y), np.nan)])
    exog = _fourier(n, season, period) if fit_end >= 2 * season else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = int(adfuller(train, autolag="AIC")[1] > 0.05)
        best = None
        for p in range(3):
            for q in range(3):
                try:
                    fit = ARIMA(train, exog=None if exog is None else exog[:fit_end], order=(p, d, q),
                                trend="t" if d else "c").fit()
                except (ValueError, np.linalg.LinAlgError):
                    continue
                if np.isfinite(fit.aic) and (best is None or fit.aic < best.aic):
                    best = fit
        if best is None:
            raise ValueError("no ARIMA order could be fitted to the training part")
        full = best.apply(ext, exog=exog)
    pred = np.stack([_state_space_ahead(full, origins + k, k) for k in range(1, steps + 1)], axis=1)
    order = best.model.order
    extra = "" if exog is None else f" + {exog.shape[1] // 2} Fourier pairs of period {period or season:.4g}"
    return pred, f"ARIMA{tuple(order)}{' with drift' if d else ''}{extra}"


def _state_space_ahead(results, target_at: np.ndarray, horizon: int) -> np.ndarray:
    """h-step forecasts of y[target_at] from a filtered linear state-space model with
    time-invariant design and transition: Z T^(h-1) a[o+1|o] (+ the state intercepts)
    + the observation intercept at the target, with o = target - h."""
    ssm = results.model.ssm
    Z = np.asarray(ssm["design"])
    T = np.asarray(ssm["transition"])
    c = np.asarray(ssm["state_intercept"])
    d = np.asarray(ssm["obs_intercept"])
    if Z.ndim == 3 and Z.shape[-1] > 1 or T.ndim == 3 and T.shape[-1] > 1 or c.ndim == 2 and c.shape[-1] > 1:
        raise ValueError("the ARIMA state space is time-varying; h-step forecasts need it constant")
    Z, T = Z.reshape(Z.shape[:2]), T.reshape(T.shape[:2])
    c = c.reshape(-1)
    a = np.asarray(results.filter_results.predicted_state)  # (k, n+1): a[t|t-1]
    origins = target_at - horizon
    state = a[:, origins + 1]  # a[o+1|o]
    for _ in range(horizon - 1):
        state = T @ state + c[:, None]
    if d.ndim == 2 and d.shape[1] > 1:
        d_at = d[0, target_at]
    else:
        d_at = np.full(len(target_at), float(d.reshape(-1)[0]))
    return (Z @ state)[0] + d_at


# ---------------------------------------------------------------------- scoring

def mase_scale(train: np.ndarray, season: int) -> np.ndarray:
    """Per column, the training part's in-sample seasonal-naive MAE (lag 1 when the
    part is not longer than one season): MASE's denominator."""
    lag = season if 1 < season < len(train) else 1
    return np.abs(train[lag:] - train[:-lag]).mean(0) + 1e-12


def accuracy(pred: np.ndarray, truth: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, MASE and sMAPE (percent) over every test point and column."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    err = pred - truth
    denom = np.abs(pred) + np.abs(truth)
    smape = np.where(denom > 0, 200 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0)
    return {"rmse": float(np.sqrt((err ** 2).mean())), "mae": float(np.abs(err).mean()),
            "mase": float((np.abs(err) / scale).mean()), "smape": float(smape.mean())}


def verdict(scores: dict[str, dict[str, float]], ours: str = "gru", metric: str = "rmse",
            label: str = "the GRU") -> dict[str, Any]:
    """Whether ``ours`` beat the best classical method on ``metric``, and by how much."""
    classical = {k: v for k, v in scores.items() if k in METHODS}
    best = min(classical, key=lambda k: classical[k][metric])
    theirs = classical[best][metric]
    ratio = scores[ours][metric] / theirs if theirs > 0 else None  # None: the best method was exact
    beats = ratio is not None and ratio < 1.0
    how = f"{ratio:.2f}x" if ratio is not None else "it forecast the test part exactly"
    return {"best_classical": best, "metric": metric, "ratio": None if ratio is None else round(ratio, 4),
            "beats_best": beats,
            "line": f"{label} {'beat' if beats else 'did not beat'} the best classical method "
                    f"({best}): {metric.upper()} {scores[ours][metric]:.4g} vs {theirs:.4g} ({how})"}
