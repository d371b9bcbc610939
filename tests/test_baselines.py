"""The classical forecasters of every forecast report (grukit/app/baselines.py): each
against statsmodels' own numbers, the scores against hand computations, and a report
that goes on when a method cannot run."""

import builtins
import warnings

import numpy as np
import pytest

from grukit import datasets
from grukit.app import baselines as bl

statsmodels = pytest.importorskip("statsmodels")


def _co2(n=600):
    return datasets.load_co2()[1][:n, 0].astype(np.float64)


@pytest.mark.parametrize("kind,season", [("add", 52), ("mul", 52), (None, 0)])
def test_holt_winters_recursions_are_statsmodels(kind, season):
    """Run forward with statsmodels' fitted parameters, the recursions give its fitted
    values (one step ahead) and its forecasts 1..7 steps past the fitted part."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y = _co2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(y[:500], trend="add", damped_trend=True, seasonal=kind,
                                   seasonal_periods=season or None, initialization_method="estimated").fit()
    p = fit.params
    seasons = None if kind is None else np.asarray(p["initial_seasons"])

    def run(origins, steps):
        return bl._holt_winters(y, p["smoothing_level"], p["smoothing_trend"], p["smoothing_seasonal"] or 0.0,
                                p["damping_trend"], p["initial_level"], p["initial_trend"], seasons, kind,
                                np.asarray(origins), steps)

    np.testing.assert_allclose(run(np.arange(-1, 499), 1)[:, 0], fit.fittedvalues, rtol=0, atol=1e-9)
    np.testing.assert_allclose(run([499], 7)[0], fit.forecast(7), rtol=0, atol=1e-9)
    # past the data's end too (what grukit predict --steps asks): the same as from its last value
    np.testing.assert_allclose(bl._holt_winters(y[:500], p["smoothing_level"], p["smoothing_trend"],
                                                p["smoothing_seasonal"] or 0.0, p["damping_trend"],
                                                p["initial_level"], p["initial_trend"], seasons, kind,
                                                np.array([499]), 7)[0], fit.forecast(7), rtol=0, atol=1e-9)


@pytest.mark.parametrize("h", [1, 3])
def test_arima_h_step_forecasts_are_statsmodels_dynamic_predictions(h):
    from statsmodels.tsa.arima.model import ARIMA

    y = _co2()
    exog = bl._fourier(len(y), 52)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = ARIMA(y[:400], exog=exog[:400], order=(2, 1, 1), trend="t").fit().apply(y, exog=exog)
    targets = np.array([450, 481, 599])
    want = [full.get_prediction(start=t - h + 1, end=t, dynamic=True).predicted_mean[-1] for t in targets]
    np.testing.assert_allclose(bl._state_space_ahead(full, targets, h), want, rtol=0, atol=1e-8)


def test_naive_methods_and_their_lags():
    cases = ((1, 52), (52, 52), (53, 52), (3, 1), (3, 0))
    assert [bl.seasonal_lag(h, m) for h, m in cases] == [52, 52, 104, 3, 3]
    values = np.arange(100.0)[:, None] * [1.0, -2.0]
    preds, info = bl.forecasts(values, np.array([58, 68]), 14, 12, fit_end=50, fitted=())
    assert preds["persistence"].shape == preds["seasonal_naive"].shape == (2, 14, 2)
    np.testing.assert_array_equal(preds["persistence"], np.repeat(values[[58, 68]][:, None], 14, axis=1))
    # steps 1..12 from the season before, 13 and 14 from two seasons before
    lags = np.array([12] * 12 + [24, 24])
    want = values[np.array([58, 68])[:, None] + np.arange(1, 15) - lags]
    np.testing.assert_array_equal(preds["seasonal_naive"], want)
    assert set(info) == {"persistence", "seasonal_naive"}
    with pytest.raises(ValueError, match="a lag of 12 steps reaches before the series starts"):
        bl.forecasts(values, np.array([4]), 1, 12, fit_end=4)


def test_ets_and_arima_follow_a_clean_seasonal_series():
    """On trend + season + small noise, both classical models forecast far better than
    the naive ones; every column gets its own fit."""
    rng = np.random.default_rng(0)
    t = np.arange(300)
    a = 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 12) + 0.05 * rng.normal(size=300)
    b = 50 - 0.02 * t + np.cos(2 * np.pi * t / 12) + 0.05 * rng.normal(size=300)
    values = np.stack([a, b], axis=1)
    origins = np.arange(239, 297)
    preds, info = bl.forecasts(values, origins, 3, 12, fit_end=200)
    scale = bl.mase_scale(values[:200], 12)
    truth = values[origins[:, None] + np.arange(1, 4)]
    scores = {k: bl.accuracy(v, truth, scale) for k, v in preds.items()}
    for method in ("ets", "arima"):
        assert preds[method].shape == (58, 3, 2)
        assert scores[method]["rmse"] < 0.1 < scores["persistence"]["rmse"], scores
        assert isinstance(info[method]["model"], list) and len(info[method]["model"]) == 2
    assert "additive season" in info["ets"]["model"][0]
    assert "Fourier pairs of period 12" in info["arima"]["model"][0]


def test_accuracy_and_verdict_by_hand():
    truth = np.array([[1.0], [2.0], [0.0]])
    pred = np.array([[2.0], [2.0], [0.0]])
    got = bl.accuracy(pred, truth, np.array([0.5]))
    assert got["rmse"] == pytest.approx(np.sqrt(1 / 3)) and got["mae"] == pytest.approx(1 / 3)
    assert got["mase"] == pytest.approx(2 / 3)  # errors 1, 0, 0 over a scale of 0.5
    assert got["smape"] == pytest.approx(200 / 3 / 3)  # 200 * 1 / 3, then 0 and 0/0 -> 0
    # the in-sample seasonal-naive MAE at lag 2: |2 - 1| and |6 - 3|
    np.testing.assert_allclose(bl.mase_scale(np.array([[1.0], [3.0], [2.0], [6.0]]), 2), [2.0], atol=1e-9)
    scores = {"gru": {"rmse": 0.9}, "persistence": {"rmse": 2.0}, "ets": {"rmse": 1.0},
              "other": {"rmse": 0.1}}  # not a classical method: not a rival
    v = bl.verdict(scores)
    assert v["best_classical"] == "ets" and v["beats_best"] and v["ratio"] == 0.9
    assert v["line"] == "the GRU beat the best classical method (ets): RMSE 0.9 vs 1 (0.90x)"
    assert not bl.verdict({**scores, "gru": {"rmse": 1.5}})["beats_best"]
    assert bl.verdict(scores, label="X")["line"].startswith("X beat the best")
    exact = bl.verdict({"gru": {"rmse": 1e-7}, "persistence": {"rmse": 0.0}, "ets": {"rmse": 0.0}})
    assert exact["ratio"] is None and not exact["beats_best"]  # no ratio over an exact forecast
    assert exact["line"].endswith("RMSE 1e-07 vs 0 (it forecast the test part exactly)")


def test_a_method_that_cannot_run_is_reported_not_fatal(monkeypatch):
    values = _co2(300)[:, None]
    targets = np.arange(249, 299)  # the origins

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("singular matrix")

    monkeypatch.setattr(bl, "_arima", broken)
    real_import = builtins.__import__

    def no_statsmodels(name, *args, **kwargs):
        if name.startswith("statsmodels"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    preds, info = bl.forecasts(values, targets, 1, 52, fit_end=200)
    assert "arima" not in preds and info["arima"] == "not run: LinAlgError: singular matrix"
    monkeypatch.setattr(builtins, "__import__", no_statsmodels)
    preds, info = bl.forecasts(values, targets, 1, 52, fit_end=200)
    assert set(preds) == {"persistence", "seasonal_naive"}
    assert info["ets"] == "not run: statsmodels is not installed (pip install 'grukit[app]')"


def test_the_forecasters_weights_follow_the_validation_errors_as_validation_grows():
    """On n validation windows, n / (n + 100) of the weight goes to the parts the rule keeps, in
    inverse proportion to their validation MSE (hand-computed at n = 100: half)."""
    from grukit.app import forecast

    assert forecast.FIT_HALF == 100
    n = 100
    parts = {"network": np.ones(n), "ets": np.full(n, 2.0), "arima": np.full(n, 0.5),
             "pretrained": np.full(n, 3.0)}
    # MSE 1, 4, 0.25, 9: the rule leaves out Holt-Winters and counts the pretrained network as 7/6 parts
    # (6/19, 6/19, 7/19); inverse MSE over the three kept: 1, 4, 1/9 -> 9/46, 36/46, 1/46
    w = forecast._weights(parts, np.zeros(n))
    assert w == {"network": pytest.approx((6 / 19 + 9 / 46) / 2), "ets": 0.0,
                 "arima": pytest.approx((6 / 19 + 36 / 46) / 2),
                 "pretrained": pytest.approx((7 / 19 + 1 / 46) / 2)}
    # many windows: nearly all fitted; a part exact on validation takes that share whole
    w = forecast._weights({"network": np.zeros(10000), "pretrained": np.ones(10000)}, np.zeros(10000))
    assert w["network"] == pytest.approx(0.5 + 0.5 * 10000 / 10100) and sum(w.values()) == pytest.approx(1)
    # a fitted part whose validation forecasts are not numbers is the worst (ARIMA, the best above):
    # left out, Holt-Winters kept, every weight a number
    parts["arima"] = np.full(n, np.nan)
    w = forecast._weights(parts, np.zeros(n))
    assert w["arima"] == 0.0 and w["ets"] > 0 and all(np.isfinite(list(w.values())))
    assert sum(w.values()) == pytest.approx(1)


def test_the_forecasters_weights_and_references(monkeypatch):
    """The weights of the forecaster's parts (the rule alone: no share fitted to the validation
    errors, FIT_HALF out of reach): equal, leaving out the fitted part worst on the validation part
    when there are three or more (never the pretrained network, which counts as 1 + 20 / (20 + n)
    parts); the references the network may correct."""
    from grukit.app import forecast

    monkeypatch.setattr(forecast, "FIT_HALF", 1e300)
    truth = np.zeros(10)
    net, ets, arima = np.full(10, 1.0), np.full(10, 2.0), np.full(10, 0.5)  # MSE 1, 4, 0.25
    assert forecast._weights({"network": net, "ets": ets, "arima": arima}, truth) == {
        "network": 0.5, "ets": 0.0, "arima": 0.5}
    assert forecast._weights({"network": ets, "ets": net, "arima": arima}, truth) == {
        "network": 0.0, "ets": 0.5, "arima": 0.5}
    assert forecast._weights({"network": net, "ets": ets}, truth) == {"network": 0.5, "ets": 0.5}
    # the pretrained network is kept even where it is worst on validation (the worst fitted part
    # goes) and weighs 1 + 20 / (20 + n) parts on n validation windows: 1.5 parts on 20, 1.1 on 180
    assert forecast.PRIOR == 20
    pre = np.full(10, 3.0)  # MSE 9
    parts = 2 + 1 + 20 / 30  # the network and ARIMA kept, the pretrained network's share on 10 windows
    assert forecast._weights({"network": net, "ets": ets, "arima": arima, "pretrained": pre}, truth) == {
        "network": pytest.approx(1 / parts), "ets": 0.0, "arima": pytest.approx(1 / parts),
        "pretrained": pytest.approx((1 + 20 / 30) / parts)}
    for n, share in ((20, 1.5), (180, 1.1)):
        w = forecast._weights({"network": np.ones(n), "ets": np.full(n, 2.0), "arima": np.full(n, 0.5),
                               "pretrained": np.full(n, 3.0)}, np.zeros(n))
        assert w["ets"] == 0.0 and w["network"] == pytest.approx(w["arima"])
        assert w["pretrained"] / w["network"] == pytest.approx(share)
    assert forecast._weights({"network": net, "ets": ets, "pretrained": arima}, truth) == {
        "network": pytest.approx(1 / (2 + 20 / 30)), "ets": 0.0,
        "pretrained": pytest.approx((1 + 20 / 30) / (2 + 20 / 30))}
    assert forecast._weights({"network": net, "pretrained": pre}, truth) == {"network": 0.5,
                                                                             "pretrained": 0.5}
    assert forecast._weights({"network": net}, truth) == {"network": 1.0}
    # several columns: each column's errors over its scale, so the one in large units does not choose alone
    two = np.zeros((10, 2))
    cols = {"network": (1.0, 100.0), "ets": (2.0, 50.0), "arima": (0.5, 300.0)}
    parts2 = {k: np.tile(np.array(v), (10, 1)) for k, v in cols.items()}
    assert forecast._weights(parts2, two)["arima"] == 0.0  # in raw units column 2 decides: ARIMA worst
    assert forecast._weights(parts2, two, np.array([1.0, 1000.0])) == {"network": 0.5, "ets": 0.0,
                                                                        "arima": 0.5}
    w = {"network": 0.5, "ets": 0.0, "arima": 0.5}
    assert forecast._forecaster(w) == ("0.50 x the network + 0.50 x ARIMA (damped Holt-Winters: worst on the "
                                       "validation part, left out)")
    parts = {"network": np.ones(3), "ets": np.full(3, 2.0), "arima": np.full(3, 4.0)}
    np.testing.assert_allclose(forecast._combine(w, parts), np.full(3, 2.5))
    # a model saved with one Holt-Winters weight reads as the same forecaster
    assert forecast._weights_of({"network_weight": 0.7}) == {"network": 0.7, "ets": pytest.approx(0.3)}
    assert forecast._weights_of({}) == {"network": 1.0}
    # Student's t's quantiles (tables: t_0.95 and t_0.9 with n degrees of freedom), for the intervals
    for n, t95, t90 in ((3, 2.3534, 1.6377), (9, 1.8331, 1.3830), (30, 1.6973, 1.3104)):
        assert forecast._t_quantile(0.9, n) == pytest.approx(t95, abs=1e-4)
        assert forecast._t_quantile(0.8, n) == pytest.approx(t90, abs=1e-4)
    values = np.arange(1.0, 41.0)[:, None]
    origins = np.arange(19, 39)
    refs = forecast._references(values, origins, 2, 12, 24, np.full((20, 2, 1), 3.0), True, 20)
    np.testing.assert_array_equal(refs["last"], np.repeat(values[origins][:, None], 2, axis=1))
    np.testing.assert_array_equal(refs["season"], values[origins[:, None] + np.array([1, 2]) - 12])
    # one season back is not inside a window of 8
    assert set(forecast._references(values, origins, 1, 12, 8, None, True, 20)) == {"last"}
    bad = np.full((20, 1, 1), -1.0)  # a negative Holt-Winters forecast cannot be a reference in logs
    assert "ets" not in forecast._references(values, origins, 1, 1, 8, bad, True, 20)
    assert "ets" in forecast._references(values, origins, 1, 1, 8, bad, False, 20)
    late = np.concatenate([np.full((15, 1, 1), 2.0), bad[:5]])  # negative only after the known windows
    assert "ets" in forecast._references(values, origins, 1, 1, 8, late, True, 15)


def test_baselines_on_a_tiny_series_by_hand():
    y = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 6.0])
    values = y[:, None]
    preds, _ = bl.forecasts(values, np.array([3, 4]), 2, 2, fit_end=4, fitted=())
    np.testing.assert_array_equal(preds["persistence"][:, :, 0], [[3, 3], [5, 5]])
    np.testing.assert_array_equal(preds["seasonal_naive"][:, :, 0], [[4, 3], [3, 5]])  # y[o-1], y[o]

    def hw(alpha, beta, gamma, level, trend, seasons, kind, origins, steps):
        return bl._holt_winters(y, alpha, beta, gamma, 1.0, level, trend, seasons, kind, np.array(origins),
                                steps)

    # simple exponential smoothing (alpha 0.5): levels 1, 1, 1.5, 2.75, 2.875, 3.9375
    np.testing.assert_allclose(hw(0.5, 0.0, 0.0, 1.0, 0.0, None, None, range(-1, 5), 1)[:, 0],
                               [1, 1, 1.5, 2.75, 2.875, 3.9375])
    # Holt's trend (alpha = beta = 0.5 from level 1, trend 1): 2, 2.25, 2.8125, and 3.5 two steps ahead
    np.testing.assert_allclose(hw(0.5, 0.5, 0.0, 1.0, 1.0, None, None, [-1, 0, 1], 2),
                               [[2, 3], [2.25, 3.0], [2.8125, 3.5]])
    # an additive season of 2 (gamma 0.5, from seasons 1, -1): 1, -1, 2.5
    np.testing.assert_allclose(hw(0.5, 0.0, 0.5, 0.0, 0.0, np.array([1.0, -1.0]), "add", [-1, 0, 1], 1)[:, 0],
                               [1, -1, 2.5])
    scale = bl.mase_scale(values[:4], 2)  # |4 - 1| and |3 - 2|: 2
    got = bl.accuracy(np.array([[2.0], [5.0]]), np.array([[3.0], [6.0]]), scale)
    assert got == pytest.approx({"rmse": 1.0, "mae": 1.0, "mase": 0.5, "smape": (200 / 5 + 200 / 11) / 2})


def test_arima_forecasts_past_the_series_end_equal_statsmodels():
    """grukit predict --steps runs ARIMA from the series' last value on: the filter runs on
    over missing values, with the Fourier terms continued; equal to statsmodels' forecast."""
    import re
    import warnings

    from statsmodels.tsa.arima.model import ARIMA

    rng = np.random.default_rng(0)
    t = np.arange(200.0)
    y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12) + 0.3 * rng.normal(size=200)
    pred, about = bl._arima(y, np.array([199]), 5, 12, 200)
    order = tuple(int(v) for v in re.match(r"ARIMA\((\d+), (\d+), (\d+)\)", about).groups())
    exog = bl._fourier(205, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ARIMA(y, exog=exog[:200], order=order, trend="t" if order[1] else "c").fit()
        want = fit.forecast(5, exog=exog[200:])
    np.testing.assert_allclose(pred[0], want, rtol=1e-8)


def test_arimas_fourier_terms_follow_a_fractional_period():
    """A weekly series' year is 52.18 steps: with that period the Fourier terms stay in phase
    with the season over the years, with 52 they drift (a week in five years)."""
    period = 365.25 / 7
    exog = bl._fourier(600, 52, period)
    t = np.arange(600.0)
    np.testing.assert_allclose(exog[:, 0], np.sin(2 * np.pi * t / period), atol=1e-12)
    np.testing.assert_allclose(exog[:, 5], np.cos(2 * np.pi * 3 * t / period), atol=1e-12)
    np.testing.assert_allclose(bl._fourier(600, 52), bl._fourier(600, 52, 52.0), atol=0)
    # twelve years of a season of 52.18 steps on a trend, with noise: ARIMA with the true period
    # forecasts the last two years better than with a 52-step one
    rng = np.random.default_rng(0)
    t = np.arange(52 * 12.0)
    y = 300 + 0.03 * t + 3 * np.sin(2 * np.pi * t / period) + np.cos(4 * np.pi * t / period) \
        + 0.2 * rng.normal(size=len(t))
    origins = np.arange(520, len(t) - 1)
    err = {}
    for p in (None, period):
        preds, info = bl.forecasts(y[:, None], origins, 1, 52, fit_end=520, fitted=("arima",), period=p)
        err[p] = np.sqrt(((preds["arima"][:, 0, 0] - y[origins + 1]) ** 2).mean())
        assert info["arima"]["model"].endswith(f"period {p or 52:.4g}")
    assert err[period] < 0.8 * err[None]


def test_the_intervals_spread_shrinks_validation_errors_towards_holt_winters_training_errors():
    from grukit.app import forecast

    val = np.array([[[1.0]], [[-1.0]], [[1.0]], [[-1.0]]])  # RMS 1 per step
    train = np.full((40, 1, 1), 4.0)  # RMS 4
    np.testing.assert_allclose(forecast._sigma(val, train), [[2.0]])  # sqrt(1 * 4)
    np.testing.assert_allclose(forecast._sigma(val, None), [[1.0]])  # no Holt-Winters: validation alone
    few = train.copy()
    few[5:] = np.nan  # fewer than 10 usable training windows: validation alone
    np.testing.assert_allclose(forecast._sigma(val, few), [[1.0]])
    partly = train.copy()
    partly[:3] = np.nan  # rows without a Holt-Winters forecast are left out
    np.testing.assert_allclose(forecast._sigma(val, partly), [[2.0]])


def test_grukit_predict_refits_arima_with_the_saved_period():
    """A saved forecaster that weighs ARIMA refits it in `grukit predict` with the Fourier
    period it was trained with (52.18 for weekly data), not the whole season."""
    from grukit.app import forecast

    y = _co2(400)[:, None]
    origins = np.array([300, 350, 399])
    info = {"weights": {"network": 0.5, "arima": 0.5}, "season": 52, "period": 365.25 / 7, "log": False}
    got = forecast._other_parts(info, y, origins, 3)
    assert set(got) == {"arima"}
    want = bl._arima(y[:, 0], origins, 3, 52, len(y), period=365.25 / 7)[0]
    np.testing.assert_allclose(got["arima"][:, :, 0], want, rtol=0, atol=1e-10)
    before = {k: v for k, v in info.items() if k != "period"}  # a model saved before the period was
    old = forecast._other_parts(before, y, origins, 3)
    np.testing.assert_allclose(old["arima"][:, :, 0], bl._arima(y[:, 0], origins, 3, 52, len(y))[0],
                               rtol=0, atol=1e-10)  # the season
    assert np.abs(old["arima"] - got["arima"]).max() > 1e-3
