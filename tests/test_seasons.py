"""The forecast job's season and window when the config leaves them out (grukit/app/seasons.py)."""

import calendar
import datetime as dt

import numpy as np
import pytest

from grukit.app import seasons, train
from grukit.app.job import JobConfig


def _months(n, start=1990):
    return [f"{start + (k // 12)}-{k % 12 + 1:02d}-01" for k in range(n)]


@pytest.mark.parametrize(
    "times,season",
    [
        (_months(30), 12),
        ([f"{1949 + k / 12:.4f}" for k in range(30)], 12),  # R's decimal time of a monthly ts
        ([f"{1956 + k / 4:.4f}" for k in range(30)], 4),
        ([f"{1959 + k // 4}Q{k % 4 + 1}" for k in range(30)], 4),
        ([f"{1959 + k // 4} Q{k % 4 + 1}" for k in range(30)], 4),
        ([f"{1987 + k // 12} {m}" for k, m in zip(range(30), ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                                               "Aug", "Sep", "Oct", "Nov", "Dec"] * 3,
                                                   strict=False)], 12),
        ([f"{m} {1987 + k // 12}" for k, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                                          "Aug", "Sep", "Oct", "Nov", "Dec"] * 2)], 12),
        ([f"{1987 + k // 12}M{k % 12 + 1:02d}" for k in range(30)], 12),  # EViews, Eurostat
        ([f"{1991 + k // 52} W{k % 52 + 1:02d}" for k in range(30)], 52),
        ([str(1700 + k) for k in range(30)], 1),  # years
        ([f"{1700 + k}.0000" for k in range(30)], 1),
        ([f"1958-03-{1 + k:02d}" for k in range(28)], 7),  # days
        ([f"2001-{1 + k // 4:02d}-{1 + 7 * (k % 4):02d}" for k in range(20)], 52),  # weeks
        ([f"2020-01-{1 + k // 24:02d}T{k % 24:02d}:00" for k in range(48)], 24),  # hours
    ],
)
def test_season_from_the_time_stamps(times, season):
    values = np.random.default_rng(0).normal(size=len(times))
    assert seasons.infer_season(times, values, has_times=True) == (season, "from the time stamps' spacing")


@pytest.mark.parametrize(
    "times,has_times,season,period",
    [
        ([f"2001-{1 + k // 4:02d}-{1 + 7 * (k % 4):02d}" for k in range(20)], True, 52, 365.25 / 7),
        ([str(np.datetime64("1974-05-19") + 7 * k) for k in range(120)], True, 52, 365.25 / 7),
        ([f"{1991 + k // 52} W{k % 52 + 1:02d}" for k in range(30)], True, 52, 365.25 / 7),
        ([f"{1990 + k * 7 / 365.25:.5f}" for k in range(60)], True, 52, 365.25 / 7),  # decimal years
        ([f"2001-{1 + k // 4:02d}-{1 + 7 * (k % 4):02d}" for k in range(20)], False, 52, 52.0),  # not read
        (_months(40), True, 12, 12.0),
        ([f"1958-03-{1 + k:02d}" for k in range(28)], True, 52, 52.0),  # daily stamps, a season given as 52
        ([str(1700 + k) for k in range(30)], True, 1, 1.0),
    ],
)
def test_the_seasons_period_is_the_calendars(times, has_times, season, period):
    """A year of weekly data is 52.18 weeks: ARIMA's Fourier terms take that period."""
    assert seasons.period(times, season, has_times) == pytest.approx(period, rel=1e-12)


def test_season_from_the_autocorrelation_without_time_stamps():
    rng = np.random.default_rng(1)
    t = np.arange(300)
    for period in (7, 12, 24):
        y = 5 + 0.02 * t + np.sin(2 * np.pi * t / period) + 0.2 * rng.normal(size=300)
        season, how = seasons.infer_season([str(i) for i in t], y, has_times=True)  # an index: no frequency
        assert season == period and "autocorrelation" in how
    assert seasons.from_autocorrelation(np.cumsum(rng.normal(size=300))) == 1  # a random walk: no season
    assert seasons.from_autocorrelation(np.ones(50)) == 1 and seasons.from_autocorrelation(np.ones(4)) == 1


def test_default_window_is_two_seasons_within_10_to_52():
    assert [seasons.default_window(s) for s in (1, 4, 7, 12, 24, 52)] == [10, 10, 14, 24, 48, 52]
    # a short series: at most a third of its length, at least 3
    assert [seasons.default_window(12, n) for n in (8, 19, 36, 60, 72, 500)] == [3, 6, 12, 20, 24, 24]


def test_a_short_yearly_series_runs_with_the_default_window(tmp_path):
    """19 years: a window of 10 leaves 9 windows, too few to split; the default window is a
    third of the series (6), so the job runs; a window given in the config is kept."""
    rng = np.random.default_rng(5)
    y = 100 + np.cumsum(rng.normal(size=19))
    data = tmp_path / "y.csv"
    data.write_text("year,v\n" + "".join(f"{2000 + i},{v:.3f}\n" for i, v in enumerate(y)))
    job = JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = str(data), "year", ["v"]
    job.train.epochs, job.model.units, job.output.dir = 2, 8, str(tmp_path / "run")
    metrics = train.run(job, log=lambda *a: None)
    assert (metrics["season"], metrics["window"]) == (1, 6)
    assert metrics["windows"] == {"train": 10, "val": 1, "gap": 0, "test": 2}
    assert np.isfinite(metrics["grukit"]["rmse"]) and metrics["verdict"]["best_classical"]
    # a window given in the config is kept: 9 windows, one each for validation and test at least
    job.data.window = 10
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["window"] == 10 and metrics["windows"] == {"train": 7, "val": 1, "gap": 0, "test": 1}
    job.data.window = 17  # 2 windows: none left to train on
    with pytest.raises(ValueError, match=r"2 windows are too few to split into train, validation and test "
                                         r"\(data.window or data.horizon lower, or a longer series\)"):
        train.run(job, log=lambda *a: None)


def test_a_short_yearly_series_forecasts_six_steps_ahead(tmp_path):
    """19 years, 6 steps ahead (the M4 competition's yearly horizon): the default window (a third
    of the series, 6) left 8 windows, one to train on after the test, validation and the 5 left
    out; the window is shortened until 3 training windows are left (3: 11 windows); a series too
    short even for that gets an error naming the horizon."""
    rng = np.random.default_rng(6)
    y = 50 * np.exp(np.cumsum(0.05 + 0.03 * rng.normal(size=19)))
    data = tmp_path / "y.csv"
    data.write_text("year,v\n" + "".join(f"{2000 + i},{v:.3f}\n" for i, v in enumerate(y)))
    job = JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = str(data), "year", ["v"]
    job.data.horizon = 6
    job.train.epochs, job.model.units, job.output.dir = 2, 8, str(tmp_path / "run")
    metrics = train.run(job, log=lambda *a: None)
    assert (metrics["season"], metrics["window"]) == (1, 3)
    assert metrics["windows"] == {"train": 3, "val": 1, "gap": 5, "test": 2}
    assert np.isfinite(metrics["grukit"]["rmse"]) and len(metrics["rmse_by_step"]["grukit"]) == 6
    data.write_text("year,v\n" + "".join(f"{2000 + i},{v:.3f}\n" for i, v in enumerate(y[:14])))
    with pytest.raises(ValueError, match=r"6 windows are too few to split into train, validation, a gap of 5 "
                                         r"\(horizon - 1\) and test \(data.horizon lower"):
        train.run(job, log=lambda *a: None)


def test_the_job_chooses_season_and_window_from_a_monthly_csv(tmp_path):
    """A user's monthly CSV with no season or window in the config: 12 and 24 are chosen
    (from the stamps, on the part before the test part), written in the report and the
    saved model; a season the series is too short for is dropped."""
    from grukit import load

    rng = np.random.default_rng(3)
    n = 120
    t = np.arange(n)
    y = 50 + 0.1 * t + 5 * np.sin(2 * np.pi * t / 12) + rng.normal(size=n)
    data = tmp_path / "m.csv"
    data.write_text("month,sales\n" + "".join(f"{d},{v:.3f}\n" for d, v in zip(_months(n), y, strict=True)))
    job = JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = str(data), "month", ["sales"]
    job.train.epochs, job.model.units, job.output.dir = 2, 8, str(tmp_path / "run")
    assert job.data.season == 0 and job.data.window == 0  # the defaults: chosen from the data
    metrics = train.run(job, log=lambda *a: None)
    assert (metrics["season"], metrics["window"]) == (12, 24)
    assert metrics["season_from"] == "from the time stamps' spacing"
    info = load(str(tmp_path / "run" / "model.grukit")).extra
    assert (info["season"], info["window"]) == (12, 24)
    short = tmp_path / "short.csv"  # 30 weeks: too short for a 52-week season
    short.write_text("week,v\n" + "".join(f"{w},{v:.3f}\n" for w, v in zip(
        [f"2001-{1 + k // 4:02d}-{1 + 7 * (k % 4):02d}" for k in range(30)], y[:30], strict=True)))
    job.data.path, job.data.time_column, job.data.target_columns = str(short), "week", ["v"]
    job.output.dir = str(tmp_path / "run2")
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["season"] == 1 and metrics["window"] == 10 and "too long" in metrics["season_from"]


def test_the_chosen_season_does_not_depend_on_the_test_part(tmp_path):
    """Without time stamps the autocorrelation chooses the season, on the training and
    validation parts only: a test part with another period changes nothing."""
    from grukit.app.forecast import _season_and_window

    rng = np.random.default_rng(4)
    t = np.arange(400)
    base = 10 + np.sin(2 * np.pi * t / 12) + 0.1 * rng.normal(size=400)
    other = base.copy()
    other[320:] = 10 + 3 * np.sin(2 * np.pi * t[320:] / 7)  # the last 20%: a stronger, other period
    job = JobConfig()
    job.data.time_column = ""
    times = [str(i) for i in t]
    assert _season_and_window(job, times, base[:, None]) == _season_and_window(job, times, other[:, None])
    assert _season_and_window(job, times, base[:, None])[:2] == (12, 24)
    assert seasons.from_autocorrelation(other[320:]) == 7  # the test part alone would say 7


@pytest.mark.parametrize(
    "times,after",
    [
        (["Nov 1990", "Dec 1990", "Jan 1991"], ["Feb 1991", "Mar 1991"]),
        (["November-1990", "December-1990", "January-1991"], ["February-1991", "March-1991"]),
        (["OCT 1990", "JAN 1991", "APR 1991"], ["JUL 1991", "OCT 1991"]),  # quarterly, as months
        (["1990M11", "1990M12", "1991M01"], ["1991M02", "1991M03"]),
        (["1990m9", "1990m10", "1990m11"], ["1990m12", "1991m1"]),
    ],
)
def test_month_first_and_m_labels_are_months(times, after):
    """Month labels with the month first or as 1990M01 read as months: ordered, and continued
    in their own style for `grukit predict --steps`."""
    from grukit.app.forecast import future_times

    assert future_times(times, 2) == after
    pos = seasons.positions(times)
    assert pos is not None and (np.diff(pos) > 0).all()
    with pytest.raises(ValueError, match="must increase from row to row"):
        seasons.check_order(times[::-1], "s.csv", "month")
    # not month names, or month 13: not labels (no season from them, no order check)
    assert seasons.label_months(["Janx 1990", "Feb 1990", "Mar 1990"]) is None
    assert seasons.label_months(["1990M12", "1990M13"]) is None


def _dates(n, style, start=2015):
    """n monthly stamps (the 1st of each month) in a spreadsheet style."""
    out = []
    for k in range(n):
        y, m = start + k // 12, k % 12 + 1
        out.append({"dmy": f"01/{m:02d}/{y}", "mdy": f"{m}/1/{y}", "dot": f"01.{m:02d}.{y}",
                    "ymd": f"{y}/{m:02d}/01", "excel": f"{m}/1/{y} 0:00"}[style])
    return out


@pytest.mark.parametrize(
    "times,after,season",
    [
        (_dates(30, "dmy"), ["01/07/2017", "01/08/2017"], 12),  # day first, read by its spacing
        (_dates(30, "mdy"), ["7/1/2017", "8/1/2017"], 12),  # month first (US spreadsheets)
        (_dates(30, "dot"), ["01.07.2017", "01.08.2017"], 12),  # German, Russian ...
        (_dates(30, "ymd"), ["2017/07/01", "2017/08/01"], 12),
        (_dates(30, "excel"), ["7/1/2017 0:00", "8/1/2017 0:00"], 12),  # Excel's date-time
        ([f"{d}/03/1958" for d in range(1, 29)], ["29/03/1958", "30/03/1958"], 7),  # a day above 12
        ([f"3/{d}/1958" for d in range(1, 29)], ["3/29/1958", "3/30/1958"], 7),
        ([f"2020-01-{1 + k // 24:02d} {k % 24:02d}:00" for k in range(48)],
         ["2020-01-03 00:00", "2020-01-03 01:00"], 24),  # ISO with a space keeps its style
    ],
)
def test_numeric_dates_in_spreadsheet_styles(times, after, season):
    """Dates as spreadsheets and other locales write them are read as dates: the season from
    their spacing, their order checked, and `grukit predict --steps` continues them in the
    column's own style."""
    from grukit.app.forecast import future_times

    values = np.random.default_rng(0).normal(size=len(times))
    assert seasons.infer_season(times, values, has_times=True) == (season, "from the time stamps' spacing")
    assert future_times(times, 2) == after
    with pytest.raises(ValueError, match="must increase from row to row"):
        seasons.check_order([times[1], times[0], *times[2:]], "s.csv", "date")


def test_dates_whose_day_and_month_cannot_be_told_apart_are_not_read():
    """A few stamps with every day and month 12 or less, regular in both readings: no guess."""
    assert seasons.read_dates(["01/02/2015", "01/03/2015", "01/04/2015"]) is None
    assert seasons.read_dates(["1/2/15", "1/3/15"]) is None  # two-digit years
    assert seasons.read_dates(["13/02/2015", "14/02/2015"])[0][0].month == 2  # a day above 12 tells
    stamps, write = seasons.read_dates(["31.01.2015", "28.02.2015", "31.03.2015"])  # month ends
    assert [d.month for d in stamps] == [1, 2, 3] and write(stamps[1]) == "28.02.2015"


def test_complete_steps_puts_back_the_steps_a_time_column_skips():
    """Rows left out of a regularly spaced column come back, written in the column's style; a
    complete or irregular column is left alone."""
    # ISO months: April and May 2001 left out
    full, index = seasons.complete_steps(["2001-01-01", "2001-02-01", "2001-03-01", "2001-06-01",
                                          "2001-07-01", "2001-08-01", "2001-09-01", "2001-10-01",
                                          "2001-11-01", "2001-12-01", "2002-01-01", "2002-02-01",
                                          "2002-03-01", "2002-04-01", "2002-05-01", "2002-06-01",
                                          "2002-07-01", "2002-08-01", "2002-09-01", "2002-10-01"])
    assert full[3:5] == ["2001-04-01", "2001-05-01"] and len(full) == 22
    assert index[:4].tolist() == [0, 1, 2, 5] and full[5] == "2001-06-01"
    # quarter labels, years, days (numeric, day first), hours
    quarters = [f"{1990 + i // 4}Q{i % 4 + 1}" for i in range(24) if i != 7]
    full, index = seasons.complete_steps(quarters)
    assert full[7] == "1991Q4" and len(full) == 24 and index[7] == 8
    years = [str(y) for y in range(1950, 1980) if y != 1960]
    assert seasons.complete_steps(years)[0][10] == "1960"
    days = [f"{d:02d}/01/2020" for d in range(1, 32) if d not in (13, 14)]
    assert seasons.complete_steps(days)[0][12:14] == ["13/01/2020", "14/01/2020"]
    hours = [f"2020-01-01 {h:02d}:00" for h in range(24) if h != 5]
    assert seasons.complete_steps(hours)[0][5] == "2020-01-01 05:00"
    # nothing skipped; more than a tenth of the rows skipped (in a few gaps, in one); fewer than 90%
    # of the gaps one step; a gap that is no whole number of steps; unreadable stamps
    assert seasons.complete_steps([str(y) for y in range(1950, 1980)]) is None
    assert seasons.complete_steps([str(y) for y in range(1950, 1970)] + ["1972", "1974", "1975"]) is None
    assert seasons.complete_steps([str(y) for y in range(1950, 1970)] + ["1975", "1976"]) is None
    assert seasons.complete_steps([str(y) for y in range(1950, 1958)] + ["1959", "1960", "1962"]) is None
    assert seasons.complete_steps([str(float(y)) for y in range(1950, 1970)] + ["1970.5"]) is None
    assert seasons.complete_steps(["a", "b", "c"]) is None


def test_the_forecast_job_fills_in_the_steps_its_csv_skips(tmp_path):
    """A monthly CSV without three of its rows: the job and `grukit predict` put them back
    (interpolated), say so, and list them in metrics.json; the season stays 12 steps."""
    rng = np.random.default_rng(4)
    n = 120
    y = 50 + 5 * np.sin(2 * np.pi * np.arange(n) / 12) + rng.normal(size=n)
    rows = [(d, v) for i, (d, v) in enumerate(zip(_months(n), y, strict=True)) if i not in (30, 31, 70)]
    data = tmp_path / "m.csv"
    data.write_text("month,sales\n" + "".join(f"{d},{v:.3f}\n" for d, v in rows))
    job = JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = str(data), "month", ["sales"]
    job.train.epochs, job.model.units, job.output.dir = 2, 8, str(tmp_path / "run")
    lines = []
    metrics = train.run(job, log=lines.append)
    skipped = [_months(n)[i] for i in (30, 31, 70)]
    assert metrics["filled_steps"] == skipped and metrics["season"] == 12
    assert any("skips 3 steps" in line and skipped[0] in line for line in lines)
    said = []
    out = train.predict(str(tmp_path / "run" / "model.grukit"), str(data), str(tmp_path / "f.csv"),
                        log=said.append)
    assert any("skips 3 steps" in line for line in said)
    window = metrics["window"]
    assert sum(1 for _ in open(out)) - 1 == n - window + 1  # one row per full window of the 120 steps


def _business_days(n, start="2019-01-01", fmt="%Y-%m-%d", without=()):
    days = np.busday_offset(np.datetime64(start, "D"), np.arange(n), roll="forward")
    return [d.astype(object).strftime(fmt) for i, d in enumerate(days) if i not in without]


def test_business_days_are_a_week_of_five_steps():
    """A stock price's trading days (no weekend rows, Friday then Monday): a season of 5, the
    Mondays after Fridays one step on, a missing weekday (a holiday) a skipped step, and the
    stamps after the last on weekdays, in the column's style. Daily data with its weekends stays
    a week of 7."""
    from grukit.app.forecast import future_times

    times = _business_days(60)  # 2019-01-01 is a Tuesday
    values = np.random.default_rng(0).normal(size=60)
    assert seasons.infer_season(times, values, has_times=True) == (
        5, "from the time stamps' spacing: business days, a week of 5")
    assert seasons.period(times, 5, has_times=True) == 5.0
    assert times[-1] == "2019-03-25" and future_times(times, 3) == ["2019-03-26", "2019-03-27", "2019-03-28"]
    assert future_times(times[:-1], 2) == ["2019-03-25", "2019-03-26"]  # Friday 22nd, then Monday
    assert seasons.complete_steps(times) is None  # nothing skipped
    # two holidays left out, day-first numeric dates with a time of day
    holidays = _business_days(60, fmt="%d/%m/%Y 16:00", without=(14, 40))
    full, index = seasons.complete_steps(holidays)
    assert len(full) == 60 and full[14] == "21/01/2019 16:00" and index[14] == 15
    assert seasons.infer_season(holidays, values[:58], has_times=True)[0] == 5
    assert future_times(full, 1) == ["26/03/2019 16:00"]  # the stamps with the holidays put back
    seasons.check_order(holidays, "s.csv", "date")
    with pytest.raises(ValueError, match="must increase from row to row"):
        seasons.check_order([holidays[1], holidays[0], *holidays[2:]], "s.csv", "date")
    assert seasons.business_days(times) and seasons.business_days(holidays)
    # not business days: calendar days, a Saturday among weekdays, weekly Mondays, too few
    days = [str(np.datetime64("2019-01-01") + k) for k in range(30)]
    assert not seasons.business_days(days) and seasons.infer_season(days, values[:30], True)[0] == 7
    assert not seasons.business_days([*times[:4], "2019-01-05", *times[4:20]])
    mondays = [str(np.datetime64("2019-01-07") + 7 * k) for k in range(30)]
    assert not seasons.business_days(mondays)
    assert seasons.infer_season(mondays, values[:30], True)[0] == 52
    assert not seasons.business_days(times[:9])


def test_the_forecast_job_on_business_days(tmp_path):
    """The job reads a trading-day CSV as business days: season 5, a holiday filled in, and
    `grukit predict --steps` dates its forecasts on the weekdays after the last row."""
    rng = np.random.default_rng(3)
    times = _business_days(200, without=(50,))
    y = 100 + np.cumsum(rng.normal(size=len(times))) + 2 * np.tile([0, 1, 2, 1, -4], 40)[:len(times)]
    data = tmp_path / "prices.csv"
    data.write_text("date,close\n" + "".join(f"{d},{v:.3f}\n" for d, v in zip(times, y, strict=True)))
    job = JobConfig()
    job.data.path, job.data.target_columns = str(data), ["close"]
    job.train.epochs, job.model.units, job.output.dir = 2, 8, str(tmp_path / "run")
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["season"] == 5 and metrics["filled_steps"] == [_business_days(200)[50]]
    out = train.predict(str(tmp_path / "run" / "model.grukit"), str(data), str(tmp_path / "f.csv"), steps=3,
                        log=lambda *a: None)
    rows = [line.split(",") for line in open(out).read().split("\n")[1:] if line]
    assert times[-1] == "2019-10-07" and [r[1] for r in rows] == ["2019-10-08", "2019-10-09", "2019-10-10"]


def test_month_and_quarter_end_dates_are_months_apart():
    """pandas' month- and quarter-end frequencies write the last day of each month (2012-01-31,
    2012-02-29, ...): months apart, so `grukit predict --steps` dates the next ones (before: blank)
    and a left-out month is put back, as for dates on one day of the month."""
    from grukit.app.forecast import future_times

    ends = [f"{2011 + k // 12}-{k % 12 + 1:02d}-{calendar.monthrange(2011 + k // 12, k % 12 + 1)[1]}"
            for k in range(30)]  # 2011-01-31 .. 2013-06-30, 2012 a leap year
    values = np.random.default_rng(0).normal(size=30)
    assert seasons.infer_season(ends, values, has_times=True) == (12, "from the time stamps' spacing")
    assert future_times(ends, 3) == ["2013-07-31", "2013-08-31", "2013-09-30"]
    assert future_times(ends[:12], 2) == ["2012-01-31", "2012-02-29"]
    full, index = seasons.complete_steps(ends[:13] + ends[14:])  # February 2012 left out
    assert full[13] == "2012-02-29" and len(full) == 30 and index[13] == 14
    quarters = [e.replace("-", "/") for e in ends[2::3]]  # 2011/03/31, 2011/06/30, ...
    assert seasons.infer_season(quarters, values[:10], has_times=True)[0] == 4
    assert future_times(quarters, 2) == ["2013/09/30", "2013/12/31"]
    assert not seasons.month_ends([dt.datetime(2011, 1, 31), dt.datetime(2011, 2, 27)])
    assert not seasons.month_ends([dt.datetime(2011, 1, 31, 1), dt.datetime(2011, 2, 28, 2)])


@pytest.mark.parametrize("style,after,season", [
    ("%d-%b-%Y", ["01-May-2013", "01-Jun-2013"], 12),  # spreadsheets, databases
    ("%d %B %Y", ["01 May 2013", "01 June 2013"], 12),  # full names, though the last is "April"'s
    ("%b %d, %Y", ["May 01, 2013", "Jun 01, 2013"], 12),
    ("%B %d %Y %H:%M", ["May 01 2013 00:00", "June 01 2013 00:00"], 12),
    ("%Y-%b-%d", ["2013-May-01", "2013-Jun-01"], 12),
    ("%Y%m%d", ["20130501", "20130601"], 12),  # compact ISO (not an index of numbers)
])
def test_dates_with_month_names_and_eight_digit_dates(style, after, season):
    """Dates as exports write them with the month's name, or as eight digits: read as dates (the
    season from their spacing, `--steps` continuing them in their style), daily ones too."""
    from grukit.app.forecast import future_times

    months = [dt.date(2010 + k // 12, k % 12 + 1, 1).strftime(style) for k in range(40)]  # .. April 2013
    values = np.random.default_rng(0).normal(size=40)
    assert seasons.infer_season(months, values, has_times=True) == (season, "from the time stamps' spacing")
    assert future_times(months, 2) == after
    days = [(dt.date(2010, 1, 1) + dt.timedelta(days=k)).strftime(style) for k in range(30)]
    assert seasons.infer_season(days, values[:30], has_times=True)[0] == 7
    assert future_times(days, 1) == [dt.date(2010, 1, 31).strftime(style)]
    full, index = seasons.complete_steps(days[:10] + days[11:])
    assert full[10] == days[10] and index[10] == 11


def test_what_is_not_a_date_with_a_month_name():
    assert seasons.read_dates(["31-Feb-2015", "01-Mar-2015"]) is None  # no such day
    assert seasons.read_dates(["01-Foo-2015", "02-Foo-2015"]) is None  # no such month
    assert seasons.read_dates(["20151301", "20151401"]) is None  # month 13
    assert seasons.read_dates(["1 jan 2015", "2 jan 2015"])[1](dt.datetime(2015, 1, 3)) == "3 jan 2015"
    assert seasons.infer_season([str(1950 + k) for k in range(30)], np.zeros(30), True)[0] == 1  # years
    assert seasons.infer_season([str(k) for k in range(10_000_000, 10_000_030)], np.zeros(30), True) == (
        1, "from the autocorrelation of the series' changes")  # an index, not dates


def test_a_repeated_time_stamp_is_named_as_one():
    """A stamp given twice (two rows of one day; local hours where the clocks go back) is not out
    of order: the error says it repeats and what to do, not to sort the file."""
    hours = [f"2020-10-25 {h:02d}:00" for h in range(24)]
    repeat = r"data row 4 repeats '2020-10-25 02:00' \(one row per step.*UTC offset"
    with pytest.raises(ValueError, match=repeat):
        seasons.check_order(hours[:3] + ["2020-10-25 02:00"] + hours[3:], "load.csv", "time")
    back = "must increase from row to row; data row 3 has '2020-10-25 00:00' after"
    with pytest.raises(ValueError, match=back):
        seasons.check_order(hours[:2] + hours[:1] + hours[2:], "load.csv", "time")
    offsets = ([f"2020-10-25T0{h}:00+02:00" for h in range(3)]
               + [f"2020-10-25T0{h}:00+01:00" for h in range(2, 5)])
    seasons.check_order(offsets, "load.csv", "time")  # 02:00+02:00 then 02:00+01:00: an hour apart


def test_iso_week_labels_are_weeks_apart():
    """ISO week labels ("2020-W05", "1991 W06"): a season of 52 (a year of 52.18 weeks in ARIMA's
    Fourier terms), the weeks after the last continued across years of 52 and 53 weeks, in the
    column's style, and a left-out week put back."""
    from grukit.app.forecast import future_times

    weeks = [f"2019-W{k + 1:02d}" for k in range(52)] + [f"2020-W{k + 1:02d}" for k in range(53)]
    values = np.random.default_rng(0).normal(size=len(weeks))
    assert seasons.infer_season(weeks, values, has_times=True) == (52, "from the time stamps' spacing")
    assert seasons.period(weeks, 52, has_times=True) == pytest.approx(365.25 / 7)
    assert future_times(weeks, 2) == ["2021-W01", "2021-W02"]  # 2020 has a W53
    assert future_times(weeks[:52], 1) == ["2020-W01"]  # 2019 has none
    assert future_times(["1991 w5", "1991 w6", "1991 w7"], 1) == ["1991 w8"]
    full, index = seasons.complete_steps(weeks[:60] + weeks[61:])
    assert full[60] == "2020-W09" and index[60] == 61
    assert seasons.week_labels(["2019-W53", "2020-W01"]) is None  # 2019 has no W53
