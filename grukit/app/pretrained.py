"""The pretrained forecaster: GRUs trained once on synthetic series (two, from two seeds, their
forecasts averaged), shipped with grukit, and one more part of the forecast job's combination
(forecast.py).

A network trained on one short series (a few dozen windows) learns little; a network that
has seen millions of series learns what trends, levels, noise and shifts do in general, and
forecasts a new series without fitting anything to it (the lesson of the M4 competition's
global models, and of forecasters pretrained on synthetic data). This one was trained by
``python tools/pretrain_forecaster.py`` on series drawn from a generator of levels, trends,
damped and changing trends, random walks, AR noise, quasi-cycles, seasons, level shifts and
outliers: no real series, so nothing it is judged on was seen in training.

How it reads a series (``forecasts``), in the units the job's network sees (logarithms for a
positive series):

* a season (data.season > 1) that passes the M4 benchmarks' 90% autocorrelation test on the
  training part is taken out first: classical decomposition's seasonal indices (a centred
  moving average for the trend; the mean detrended value of each phase) from the last
  ``SEASONS_BACK`` seasons before each forecast's origin, subtracted from the history and
  added back to the forecasts;
* the last ``LONGEST`` values up to the origin, taken relative to the last one and divided by
  their mean absolute change, are the network's input (with a channel that marks real steps;
  a shorter history is padded in front);
* it forecasts the next ``STEPS`` values in the same units; the first ``steps`` are used.

Only data up to each origin is read, and nothing is fitted to the series: the job runs it on
the validation part (to weigh it against the other parts) and the test part like the
classical methods with their fixed parameters.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

STEPS = 14  # forecast steps (the M4 horizons' longest)
LONGEST = 112  # the most past values read
SEASONS_BACK = 6  # the seasonal indices come from the last six seasons before each origin
CLIP = 200.0  # inputs past this many mean changes from the last value are cut there (outliers)
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained_forecaster.safetensors")


class Net(torch.nn.Module):
    """GRU(2 -> units) over the history, a Linear head on its last state -> (B, STEPS)."""

    def __init__(self, units: int = 96):
        super().__init__()
        from ..modules import GRU

        self.gru = GRU(2, units, batch_first=True)
        self.head = torch.nn.Linear(units, STEPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, LONGEST, 2) -> (B, STEPS)
        out, _ = self.gru(x)
        return self.head(out[:, -1])


@functools.lru_cache(maxsize=1)
def load() -> tuple[Net, ...]:
    """The shipped networks (read once per process): the file holds one or more, trained from
    different seeds, under the prefixes "0.", "1.", ...; their forecasts are averaged."""
    from safetensors.torch import load_file

    state = load_file(WEIGHTS)
    nets = []
    for m in range(len({k.split(".", 1)[0] for k in state})):
        own = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{m}.")}
        net = Net(units=own["head.weight"].shape[1])
        net.load_state_dict(own)
        nets.append(net.eval())
    return tuple(nets)


def save(nets: list[Net], path: str) -> None:
    """Networks to one file, as load reads it."""
    from safetensors.torch import save_file

    save_file({f"{m}.{k}": v.contiguous() for m, net in enumerate(nets) for k, v in net.state_dict().items()},
              path)


def normalise(history: np.ndarray) -> tuple[np.ndarray, float, float]:
    """history (L,) -> (its values relative to the last one over their mean absolute change,
    the last value, that change). The pretraining and the forecasts share it."""
    last = float(history[-1])
    change = float(np.abs(np.diff(history)).mean()) if len(history) > 1 else 1.0
    change = max(change, 1e-6 * max(1.0, abs(last)))
    return (history - last) / change, last, change


def inputs(history: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The network's input (LONGEST, 2) from a history (the last LONGEST values are read)."""
    history = history[-LONGEST:]
    u, last, change = normalise(history)
    x = np.zeros((LONGEST, 2), np.float32)
    x[LONGEST - len(history):, 0] = np.clip(u, -CLIP, CLIP)
    x[LONGEST - len(history):, 1] = 1.0
    return x, last, change


def is_seasonal(v: np.ndarray, season: int) -> bool:
    """The M4 benchmarks' test: the autocorrelation at lag ``season`` beyond the 90% limit
    (Bartlett's variance from the lower lags). Needs three seasons."""
    n = len(v)
    if season <= 1 or n < 3 * season:
        return False
    d = v - v.mean()
    denom = float(np.dot(d, d))
    if denom == 0:
        return False
    acf = np.array([np.dot(d[:n - k], d[k:]) / denom for k in range(1, season + 1)])
    limit = 1.645 * np.sqrt((1 + 2 * (acf[:-1] ** 2).sum()) / n)
    return bool(abs(acf[-1]) > limit)


def seasonal_indices(v: np.ndarray, season: int, start: int) -> np.ndarray:
    """Classical decomposition's additive seasonal indices (season,) of v[start:], phase 0 at
    index 0 of v: the mean of each phase's value less a centred moving average, summing to 0."""
    x = v[start:]
    if len(x) < 2 * season:
        return np.zeros(season)
    w = np.ones(season) / season if season % 2 else np.r_[0.5, np.ones(season - 1), 0.5] / season
    trend = np.convolve(x, w, mode="valid")
    off = (len(w) - 1) // 2
    detrended = x[off:off + len(trend)] - trend
    phase = (np.arange(len(detrended)) + off + start) % season
    idx = np.array([detrended[phase == p].mean() if (phase == p).any() else 0.0 for p in range(season)])
    return idx - idx.mean()


def history(v: np.ndarray, o: int, first: int, steps: int, season: int, seasonal: bool
            ) -> tuple[np.ndarray, np.ndarray]:
    """v[first .. o] as the network reads it, and what to add back to its forecasts of steps
    1..steps after o: with ``seasonal``, the seasonal indices of the last SEASONS_BACK seasons
    before o taken out of the history and added back to the forecasts; else v and zeros."""
    past = v[first:o + 1]
    if not seasonal:
        return past, np.zeros(steps)
    idx = seasonal_indices(v[:o + 1], season, max(0, o + 1 - SEASONS_BACK * season))
    return past - idx[np.arange(first, o + 1) % season], idx[(o + np.arange(1, steps + 1)) % season]


def seasonal_columns(values: np.ndarray, season: int, log_scale: bool) -> list[bool]:
    """Per column of values (T, C) (the part the job fits on): whether its season is taken out."""
    v = np.log(values) if log_scale else np.asarray(values, dtype=float)
    return [is_seasonal(v[:, j], season) for j in range(v.shape[1])]


def forecasts(values: np.ndarray, origins: np.ndarray, steps: int, season: int, log_scale: bool,
              seasonal: list[bool]) -> np.ndarray:
    """The pretrained network's forecasts (N, steps, C) of steps 1..steps after each origin,
    in the series' units, from values (T, C) up to each origin only; ``seasonal[j]``: whether
    column j's season is taken out (seasonal_columns, decided on the part the job fits on).
    Past STEPS steps it forecasts on from its own forecasts."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    values = np.asarray(values, dtype=float)
    origins = np.asarray(origins, dtype=int)
    if steps > STEPS:  # recursively, one origin at a time
        out = np.empty((len(origins), steps, values.shape[1]))
        for i, o in enumerate(origins):
            series = values[:o + 1]
            while len(series) <= o + steps:
                k = min(STEPS, o + steps + 1 - len(series))
                series = np.concatenate([series, forecasts(series, [len(series) - 1], k, season, log_scale,
                                                           seasonal)[0]])
            out[i] = series[o + 1:]
        return out
    nets = load()
    v_all = np.log(values) if log_scale else values
    out = np.empty((len(origins), steps, values.shape[1]))
    for j in range(values.shape[1]):
        v = v_all[:, j]
        x = np.empty((len(origins), LONGEST, 2), np.float32)
        last, change, added = np.empty(len(origins)), np.empty(len(origins)), np.zeros((len(origins), steps))
        for i, o in enumerate(origins):
            past, added[i] = history(v, o, max(0, o + 1 - LONGEST), steps, season, seasonal[j])
            x[i], last[i], change[i] = inputs(past)
        with torch.inference_mode():
            y = sum(net(torch.from_numpy(x)) for net in nets).numpy()[:, :steps].astype(float) / len(nets)
        out[:, :, j] = last[:, None] + change[:, None] * y + added
    return np.exp(out) if log_scale else out
