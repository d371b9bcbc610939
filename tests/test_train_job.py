"""`grukit train` / `grukit predict`: the default job on the shipped series, configs, errors."""

import csv
import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from grukit import datasets
from grukit.app import forecast, train
from grukit.app.job import JobConfig, parse_config


def test_shipped_co2_series():
    dates, values = datasets.load_co2()
    assert len(dates) == values.shape[0] == 2284 and values.shape[1] == 1
    assert dates[0] == "1958-03-29" and dates[-1] == "2001-12-29"
    assert np.isfinite(values).all() and 310 < values.min() < values.max() < 380  # gaps filled


def test_default_job_reports_the_classical_forecasters_and_writes_its_outputs(tmp_path):
    job = JobConfig()
    job.train.epochs, job.output.dir = 8, str(tmp_path)
    lines = []
    metrics = train.run(job, log=lambda *a: lines.append(" ".join(map(str, a))))
    assert metrics["gru"]["rmse"] < metrics["seasonal_naive"]["rmse"]
    assert metrics["gru"]["mae"] < metrics["seasonal_naive"]["mae"]
    methods = ("persistence", "seasonal_naive", "ets", "arima")
    for name in ("grukit", "gru", *methods):
        assert set(metrics[name]) == {"rmse", "mae", "mase", "smape"} and metrics[name]["rmse"] > 0
    # CO2 is seasonal and trending: the fitted models beat both naive ones on the same points
    naive = min(metrics["persistence"]["rmse"], metrics["seasonal_naive"]["rmse"])
    assert metrics["ets"]["rmse"] < naive and metrics["arima"]["rmse"] < naive
    assert "ARIMA(" in metrics["classical"]["arima"]["model"]
    # weekly: the season is 52 steps, ARIMA's Fourier terms a calendar year of 52.18 weeks
    assert metrics["season"] == 52 and metrics["period"] == pytest.approx(365.25 / 7, abs=1e-6)
    assert metrics["classical"]["arima"]["model"].endswith("Fourier pairs of period 52.18")
    assert "damped" in metrics["classical"]["ets"]["model"]
    verdict = metrics["verdict"]
    best = min(methods, key=lambda k: metrics[k]["rmse"])
    assert verdict["best_classical"] == best
    assert verdict["beats_best"] == (metrics["grukit"]["rmse"] < metrics[best]["rmse"])
    assert verdict["line"].startswith("grukit's forecaster")
    assert metrics["network_sees"]["log"] is True  # CO2 is positive
    # two networks, on the reference forecast best alone on the validation part and on the last
    # value; the one better on the validation part is kept
    val_rmse = metrics["network_sees"]["validation_rmse"]
    assert len(val_rmse) == 2 and list(val_rmse)[1] == "last" and list(val_rmse)[0] in ("season", "ets")
    kept = min(val_rmse, key=val_rmse.get)
    assert metrics["network_sees"]["reference"] == forecast.REFERENCES[kept]
    saved = sorted(p.name for p in (tmp_path / "references").iterdir())
    assert saved == sorted(f"{k}.grukit" for k in val_rmse)
    # Holt-Winters, ARIMA and the pretrained network all ran: three of the four parts kept, weighed by
    # forecast._weights on the parts' validation forecasts (the pretrained network always kept)
    parts = {k.strip(): float(w) for w, k in re.findall(r"(\d\.\d\d) x ([^+(]+)", metrics["forecaster"])}
    assert len(parts) == 3 and "left out" in metrics["forecaster"] and "the pretrained network" in parts
    assert sum(parts.values()) == pytest.approx(1, abs=0.015)
    val = metrics["parts"]["val"]
    weights = forecast._weights({k: val[k] for k in ("network", "ets", "arima", "pretrained")},
                                metrics["parts"]["truth_val"])
    assert metrics["forecaster"] == forecast._forecaster(weights)
    assert set(metrics["pretrained"]) == {"rmse", "mae", "mase", "smape"}
    assert metrics["pretrained"]["rmse"] < naive  # it reads CO2's season and trend
    assert verdict["line"] in "\n".join(lines) and "MASE" in "\n".join(lines)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["gru"] == metrics["gru"] and on_disk["verdict"] == verdict
    for png in ("forecast.png", "learning_curves.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"

    # predict on a user's CSV with the same columns
    dates, values = datasets.load_co2()
    series = tmp_path / "recent.csv"
    with open(series, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "co2"])
        w.writerows([d, v] for d, v in zip(dates[-120:], values[-120:, 0], strict=True))
    out = train.predict(str(tmp_path / "model.grukit"), str(series), log=lambda *a: None)
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["window_end", "co2_forecast_1_ahead"] and len(rows) == 1 + 120 - 52 + 1
    forecasts = np.array([float(r[1]) for r in rows[1:-1]])
    truth = values[-120 + 52:, 0]
    assert np.sqrt(((forecasts - truth) ** 2).mean()) < 2.0  # sane, in ppm


def test_multi_step_job_and_forecasts_past_the_end_with_intervals(tmp_path):
    """horizon = 3: every step 1..3 is forecast and scored (by step too); predict writes the
    three for every window; predict --steps N forecasts past the series' end, recursively past
    the trained horizon, with 90% intervals that widen after it, and a plot."""
    from grukit.app import cli

    rng = np.random.default_rng(1)
    data = tmp_path / "load.csv"
    with open(data, "w") as f:
        f.write("when,load\n")
        f.writelines(f"{i},{10 + 0.01 * i + np.sin(2 * np.pi * i / 24) + 0.1 * rng.normal():.4f}\n"
                     for i in range(300))
    job = JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = str(data), "when", ["load"]
    job.data.window, job.data.season, job.data.horizon = 48, 24, 3
    job.train.epochs, job.model.units, job.output.dir = 4, 8, str(tmp_path / "run")
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["horizon"] == 3 and len(metrics["rmse_by_step"]["grukit"]) == 3
    # 250 windows: 25 for validation, 50 for test and a gap of 2 (horizon - 1) between them, so
    # that no validation target (which chose the parts, stopped training, sized the intervals) is
    # one of the test part's targets; each load value here is distinct
    assert metrics["windows"] == {"train": 173, "val": 25, "gap": 2, "test": 50}
    parts = metrics["parts"]
    assert not set(parts["truth_val"].ravel()) & set(parts["truth_test"].ravel())
    assert len(np.unique(parts["truth_test"])) == 50 + 2  # 50 windows of 3 steps, one apart
    best = metrics["verdict"]["best_classical"]
    assert len(metrics["rmse_by_step"][best]) == 3
    assert 0 <= metrics["interval"]["test_coverage"] <= 1
    model = str(tmp_path / "run" / "model.grukit")
    written = train.predict(model, str(data), str(tmp_path / "w.csv"), log=lambda *a: None)
    rows = list(csv.reader(open(written)))
    assert rows[0] == ["window_end", *[f"load_forecast_{k}_ahead" for k in (1, 2, 3)]]
    assert len(rows) == 1 + 300 - 48 + 1 and rows[-1][0] == "299"
    assert cli.main(["predict", model, str(data), "--steps", "2", "--output", str(tmp_path / "a.csv")]) == 0
    ahead = list(csv.reader(open(tmp_path / "a.csv")))
    assert ahead[0] == ["step", "time", "load", "load_lower_90", "load_upper_90"]
    assert [r[2] for r in ahead[1:]] == rows[-1][1:3]  # the last window's forecasts
    assert [r[:2] for r in ahead[1:]] == [["1", "300"], ["2", "301"]]  # the times go on
    out = train.predict(model, str(data), str(tmp_path / "b.csv"), log=lambda *a: None, steps=8)
    far = np.array([[float(v) for v in r[2:]] for r in list(csv.reader(open(out)))[1:]])
    assert far.shape == (8, 3) and (far[:, 1] < far[:, 0]).all() and (far[:, 0] < far[:, 2]).all()
    width = far[:, 2] - far[:, 1]
    assert width[7] > width[2] and np.isfinite(far).all()
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a positive int"):
            train.predict(model, str(data), str(tmp_path / "c.csv"), steps=bad)


def test_future_times_continue_the_series_spacing():
    from grukit.app.forecast import future_times

    assert future_times(["1", "2", "3"], 2) == ["4", "5"]
    assert future_times(["0.5", "1.0", "1.5"], 2) == ["2", "2.5"]
    assert future_times(["2001-12-15", "2001-12-22", "2001-12-29"], 2) == ["2002-01-05", "2002-01-12"]
    assert future_times(["2020-11-01", "2020-12-01", "2021-01-01"], 2) == ["2021-02-01", "2021-03-01"]
    assert future_times(["1990-01-01", "1990-04-01"], 2) == ["1990-07-01", "1990-10-01"]  # quarterly
    # yearly on the last day of a month: a year on, not 365 days on (2004 is a leap year)
    assert future_times(["2003-12-31", "2004-12-31"], 2) == ["2005-12-31", "2006-12-31"]
    assert future_times(["2020-01-01T00:00", "2020-01-01T06:00"], 1) == ["2020-01-01T12:00"]
    assert future_times(["1", "2", "4"], 1) == future_times(["a", "b"], 1) == [""]  # no regular spacing
    assert future_times(["1959Q3", "1959Q4"], 3) == ["1960Q1", "1960Q2", "1960Q3"]  # quarter labels
    assert future_times(["1959 Q3", "1960 Q1"], 2) == ["1960 Q3", "1961 Q1"]
    assert future_times(["1987 Nov", "1987 Dec"], 2) == ["1988 Jan", "1988 Feb"]  # month labels
    assert future_times(["2001-JAN", "2001-FEB"], 1) == ["2001-MAR"]
    assert future_times(["1959Q1", "1959Q3", "1959Q4"], 1) == [""]


def test_a_resumed_forecast_job_takes_the_networks_its_run_finished(tmp_path):
    """The forecast job trains two networks; --resume of a finished run loads both from
    references/ (none is trained again) and reports the same."""
    rng = np.random.default_rng(3)
    t = np.arange(150)
    data = tmp_path / "s.csv"
    data.write_text("t,v\n" + "".join(f"{i},{float(20 + 0.05 * i + np.sin(i / 2) + 0.2 * rng.normal())!r}\n"
                                      for i in t))
    job = JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = str(data), "t", ["v"]
    job.data.window, job.data.season = 12, 4
    job.train.epochs, job.model.units, job.output.dir = 3, 8, str(tmp_path / "run")
    first = train.run(job, log=lambda *a: None)
    trained = list(first["network_sees"]["validation_rmse"])
    assert len(trained) == 2  # a seasonal series: Holt-Winters or the season before is best alone, then last
    # the checkpoint is the last network trained
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text()) == {"network": trained[-1]}
    lines = []
    again = train.run(job, log=lambda *a: lines.append(" ".join(map(str, a))),
                      resume=str(tmp_path / "run" / "checkpoint.grukit"))
    assert sum("trained by the run resumed" in line for line in lines) == 2
    assert again["network_sees"] == first["network_sees"] and again["grukit"] == first["grukit"]
    assert again["epochs_run"] == first["epochs_run"]


def test_the_forecaster_never_reads_the_test_part(tmp_path):
    """Two runs whose series differ only in the test part: the same weights, the same
    choices (transform, reference, combination weight, interval widths) and the same
    classical models; only the test scores differ."""
    from grukit import load

    rng = np.random.default_rng(2)
    t = np.arange(260)
    base = 20 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 12) + 0.3 * rng.normal(size=260)
    window, n = 24, 260 - 24 - 1 + 1
    first_test = (window - 1) + (n - int(n * 0.2)) + 1  # the first test window's target
    runs = []
    for k, series in enumerate((base, np.r_[base[:first_test], 1.5 * base[first_test:] + 3])):
        data = tmp_path / f"s{k}.csv"
        data.write_text("t,v\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(series)))
        job = JobConfig()
        job.data.path, job.data.time_column, job.data.target_columns = str(data), "t", ["v"]
        job.data.window, job.data.season = window, 12
        job.train.epochs, job.model.units, job.output.dir = 3, 8, str(tmp_path / f"run{k}")
        metrics = train.run(job, log=lambda *a: None)
        model = load(str(tmp_path / f"run{k}" / "model.grukit"))
        runs.append((metrics, model.extra, [p.detach().clone() for p in model.parameters()]))
    (m0, info0, w0), (m1, info1, w1) = runs
    for a, b in zip(w0, w1, strict=True):
        assert torch.equal(a, b)
    for key in ("scale", "log", "reference", "weights", "sigma", "z", "level", "pretrained_seasonal"):
        assert info0[key] == info1[key], key
    assert m0["network_sees"] == m1["network_sees"] and m0["forecaster"] == m1["forecaster"]
    for method in ("ets", "arima"):
        assert m0["classical"][method]["model"] == m1["classical"][method]["model"]
    assert m0["grukit"]["rmse"] != m1["grukit"]["rmse"]  # the test part did change


def test_cli_train_with_a_config_on_a_users_csv(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(400)
    data = tmp_path / "load.csv"
    with open(data, "w") as f:
        f.write("when,load,temp\n")
        for i in t:
            f.write(f"{i},{10 + np.sin(2 * np.pi * i / 24) + 0.05 * rng.normal():.4f},{i % 7}\n")
    config = tmp_path / "job.toml"
    config.write_text(f'[data]\npath = "{data}"\ntime_column = "when"\ntarget_columns = ["load"]\n'
                      'window = 30\nseason = 24\n[train]\nepochs = 3\n[model]\nunits = 8\n')
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    res = subprocess.run([sys.executable, "-m", "grukit", "train", str(config), "--out",
                          str(tmp_path / "run"), *(["--tensorboard"] if tensorboard else [])],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "seasonal_naive" in res.stdout and (tmp_path / "run" / "model.grukit").exists()
    assert "arima" in res.stdout and "the best classical method" in res.stdout
    if tensorboard:  # --tensorboard: the epochs' losses as TensorBoard reads them
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        runs = json.loads((tmp_path / "run" / "metrics.json").read_text())["network_sees"]["validation_rmse"]
        assert sorted(p.name for p in (tmp_path / "run" / "tensorboard").iterdir()) == sorted(runs)
        for network in runs:  # one TensorBoard run per network the job trained
            board = EventAccumulator(str(tmp_path / "run" / "tensorboard" / network / "validation")).Reload()
            assert [e.step for e in board.Scalars("epoch_loss")] == [0, 1, 2]


@pytest.mark.parametrize(
    "toml,exc,match",
    [
        ("[data]\nwindw = 3\n", ValueError, r"unknown field data.windw .* known fields of \[data\]"),
        ("[dataa]\nwindow = 3\n", ValueError, r"unknown section \[dataa\]"),
        ("[data]\nwindow = 'big'\n", TypeError, r"data.window .* must be int"),
        ("[data]\nwindow = -1\n", ValueError, r"data.window .* must be >= 0"),
        ("[data]\nseason = -2\n", ValueError, r"data.season .* must be >= 0"),
        ("[split]\ntest_fraction = 0.95\n", ValueError, r"split fractions"),
        ("[data\n", ValueError, r"not valid TOML"),
    ],
)
def test_bad_configs(toml, exc, match):
    with pytest.raises(exc, match=match):
        parse_config(toml, "job.toml")


def test_target_columns_left_empty_take_every_column_but_the_time_column(tmp_path):
    """The default target_columns (empty) forecast every column but the time column, and
    say what to set when one of them is not numbers or holds one value through training."""
    from grukit import load

    rng = np.random.default_rng(4)
    t = np.arange(90)
    data = tmp_path / "s.csv"
    data.write_text("when,a,b\n" + "".join(f"{i},{float(10 + np.sin(i / 3) + 0.1 * rng.normal())!r},"
                                         f"{float(5 + 0.02 * i + 0.1 * rng.normal())!r}\n" for i in t))
    job = JobConfig()
    assert job.data.target_columns == []
    job.data.path, job.data.time_column, job.data.window = str(data), "when", 12
    job.train.epochs, job.model.units, job.output.dir = 2, 8, str(tmp_path / "run")
    metrics = train.run(job, log=lambda *a: None)
    assert load(str(tmp_path / "run" / "model.grukit")).extra["target_columns"] == ["a", "b"]
    assert metrics["grukit"]["rmse"] > 0
    # each column's own scores, and the verdict on MASE (RMSE over columns in other units says little)
    assert list(metrics["by_column"]) == ["a", "b"]
    parts = metrics["parts"]
    for j, col in enumerate("ab"):
        err = parts["test"]["ets"][..., j] - parts["truth_test"][..., j]
        assert metrics["by_column"][col]["ets"]["rmse"] == pytest.approx(float(np.sqrt((err ** 2).mean())))
    assert metrics["verdict"]["metric"] == "mase" and "MASE" in metrics["verdict"]["line"]
    best = min(("persistence", "seasonal_naive", "ets", "arima"), key=lambda k: metrics[k]["mase"])
    assert metrics["verdict"]["best_classical"] == best
    data.write_text("when,store,v\n" + "".join(f"{i},A,{i % 7}\n" for i in t))
    with pytest.raises(ValueError, match=r"column 'store': 'A' is not a number: set target_columns under "
                       r"\[data\] to the columns of numbers to model"):
        train.run(job, log=lambda *a: None)
    data.write_text("when,v\n" + "".join(f"{i},{5 if i < 70 else i}\n" for i in t))
    with pytest.raises(ValueError, match=r"column 'v' holds one value, 5, through the training part \(its "
                       r"first \d+ steps, to \d+\): nothing there to learn"):
        train.run(job, log=lambda *a: None)
    data.write_text("when\n" + "".join(f"{i}\n" for i in t))
    with pytest.raises(ValueError, match=r"has no column to model besides \['when'\]"):
        train.run(job, log=lambda *a: None)


def test_missing_column_and_too_short_series(tmp_path):
    data = tmp_path / "s.csv"
    data.write_text("date,value\n" + "".join(f"{i},{i}\n" for i in range(20)))
    job = JobConfig()
    job.data.path, job.data.target_columns, job.output.dir = str(data), ["co2"], str(tmp_path)
    with pytest.raises(ValueError, match=r"column 'co2' is not in .*columns are \['date', 'value'\]: set "
                       r"target_columns under \[data\] .* target_columns = \['value'\]"):
        train.run(job, log=lambda *a: None)
    job.data.target_columns, job.data.time_column = ["value"], "when"
    with pytest.raises(ValueError, match=r"column 'when' is not in .*: set time_column under \[data\] to the "
                       r"column of time stamps, or time_column = \"\" for a file without them"):
        train.run(job, log=lambda *a: None)
    job.data.task = "anomaly"
    with pytest.raises(ValueError, match=r"column 'when' is not in .*: set time_column"):
        train.run(job, log=lambda *a: None)
    job.data.task, job.data.time_column, job.data.window = "forecast", "date", 52
    with pytest.raises(ValueError, match=r"shorter than one window"):
        train.run(job, log=lambda *a: None)
    data.write_text("date,value\n1,2\n2,oops\n")
    with pytest.raises(ValueError, match=r"line 3, column 'value': 'oops' is not a number"):
        datasets.read_series(str(data), "date", ["value"])


def test_csv_rows_that_do_not_fit_the_header_are_errors(tmp_path):
    data = tmp_path / "s.csv"
    data.write_text("month,sales\n2001-01-01,5\n2001-02-01,1,234.5\n")  # an unquoted thousands comma
    with pytest.raises(ValueError, match=r"line 3: 3 cells where the header has 2 .*must be quoted"):
        datasets.read_series(str(data), "month", ["sales"])
    data.write_text("month,sales\n2001-01-01,5\n2001-02-01\n")  # a short row is not a gap
    with pytest.raises(ValueError, match=r"line 3: 1 cells where the header has 2"):
        datasets.read_series(str(data), "month", ["sales"])
    # the header alone: the short row after it is not read
    assert datasets.read_csv(str(data), ["sales"], header_only=True) == (["month", "sales"], [])
    data.write_text('month,sales\n2001-01-01,"1,234.5"\n')  # quoted, it is one cell: not a number
    with pytest.raises(ValueError, match=r"line 2, column 'sales': '1,234.5' is not a number"):
        datasets.read_series(str(data), "month", ["sales"])
    data.write_text('month,sales\n\n2001-01-01,"1234.5"\n2001-02-01,\n2001-03-01,3\n')  # a gap
    times, values = datasets.read_series(str(data), "month", ["sales"])  # blank lines are skipped
    assert times == ["2001-01-01", "2001-02-01", "2001-03-01"]
    np.testing.assert_allclose(values[:, 0], [1234.5, (1234.5 + 3) / 2, 3])
    # R's write.csv (quoted names, a row-name column, NA for a missing value), #N/A, NULL: gaps
    data.write_text('"","time","value"\n"1",1949,1\n"2",1950,NA\n"3",1951,#N/A\n"4",1952,NULL\n"5",1953,5\n')
    times, values = datasets.read_series(str(data), "time", ["value"])
    assert times == ["1949", "1950", "1951", "1952", "1953"]
    np.testing.assert_allclose(values[:, 0], [1, 2, 3, 4, 5])
    data.write_bytes("\ufeffmonth,sales\n2001-01-01,5\n2001-02-01,6\n".encode())  # a spreadsheet's UTF-8
    assert datasets.read_series(str(data), "month", ["sales"])[0] == ["2001-01-01", "2001-02-01"]
    data.write_text("month;sales\n2001-01-01;5\n")
    with pytest.raises(ValueError, match=r"columns are \['month;sales'\] \(the file looks separated by ';'"):
        datasets.read_series(str(data), "month", ["sales"])


@pytest.mark.parametrize("swap", ["shuffled", "repeated"])
def test_time_stamps_out_of_order_are_errors(tmp_path, swap):
    from grukit.app import seasons

    months = [f"{2001 + i // 12}-{i % 12 + 1:02d}-01" for i in range(60)]
    if swap == "shuffled":
        months[40], months[41] = months[41], months[40]
    else:
        months[41] = months[40]
    data = tmp_path / "s.csv"
    data.write_text("month,sales\n" + "".join(f"{m},{10 + i % 12}\n" for i, m in enumerate(months)))
    job = JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = str(data), "month", ["sales"]
    job.output.dir = str(tmp_path / "run")
    said = (rf"data row 42 has '{months[41]}' after '{months[40]}' \(sort the rows" if swap == "shuffled"
            else rf"data row 42 repeats '{months[41]}' \(one row per step")
    with pytest.raises(ValueError, match=rf"'month' must increase from row to row; {said}"):
        train.run(job, log=lambda *a: None)
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert list(seasons.positions(["1959Q4", "1960Q1"])) == [1959 * 12 + 9, 1960 * 12]
    assert list(seasons.positions(["1987 Jan", "1987 Feb"])) == [1987 * 12, 1987 * 12 + 1]
    assert list(seasons.positions(["2001-01-01", "2001-01-02T12:00"])) == [0, 1.5 * 86400]
    assert list(seasons.positions(["1991 W06", "1991 W07"])) == [103838, 103839]  # ISO weeks
    with pytest.raises(ValueError, match="data row 2 has '1991 W06' after '1991 W07'"):
        seasons.check_order(["1991 W07", "1991 W06"], "x.csv", "week")
    seasons.check_order(["a", "c", "b"], "x.csv", "label")  # not read as times: not checked


def test_cli_reports_user_errors_plainly(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[model]\nsize = 3\n")
    res = subprocess.run([sys.executable, "-m", "grukit", "train", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "unknown field model.size" in res.stderr
    assert "Traceback" not in res.stderr
    # a data file given where the config goes: the error says what to write instead
    data = tmp_path / "sales.csv"
    data.write_text("month,sales\n2015-01,100.25\n2015-02,105.24\n")
    res = subprocess.run([sys.executable, "-m", "grukit", "train", str(data)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "takes a TOML job config, not the data" in res.stderr and "path = 'sales.csv'" in res.stderr


def _write_sequences(path, rng, n_per_class=30):
    """Long format: rising vs falling noisy ramps of 5-14 steps, two features, string ids."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "kind", "a", "b"])
        for k in range(2 * n_per_class):
            label = ("up", "down")[k % 2]
            steps = int(rng.integers(5, 15))
            ramp = np.linspace(0, 1, steps) * (1 if label == "up" else -1)
            for t in range(steps):
                w.writerow([f"s{k}", label, f"{ramp[t] + rng.normal(0, 0.3):.4f}", f"{rng.normal():.4f}"])


def test_classify_job_on_a_users_long_csv_and_predict(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "seqs.csv"
    _write_sequences(data, rng)
    job = parse_config(f"""
        [data]
        task = "classify"
        path = "{data}"
        sequence_column = "id"
        label_column = "kind"
        [split]
        val_fraction = 0.2
        test_fraction = 0.3
        [train]
        epochs = 40
        learning_rate = 0.01
        batch_size = 8
        [output]
        dir = "{tmp_path / 'out'}"
    """)
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["sequences"] == {"train": 30, "val": 12, "test": 18}
    assert metrics["classes"] == ["down", "up"]
    # the mean of feature a tells the classes apart too; chance is 0.5
    assert metrics["gru"]["accuracy"] >= 0.8 and metrics["majority_class"]["accuracy"] == 0.5
    assert np.sum(metrics["confusion"]) == 18
    for png in ("confusion.png", "learning_curves.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"

    new = tmp_path / "new.csv"
    _write_sequences(new, np.random.default_rng(1), n_per_class=5)
    with pytest.raises(ValueError, match="steps is for forecasting models"):
        train.predict(str(tmp_path / "out" / "model.grukit"), str(new), steps=3)
    out = train.predict(str(tmp_path / "out" / "model.grukit"), str(new), log=lambda *a: None)
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["id", "predicted_label", "probability"] and len(rows) == 11
    truth = ["up", "down"] * 5
    assert sum(r[1] == t for r, t in zip(rows[1:], truth, strict=True)) >= 8


def test_classify_job_on_japanese_vowels(tmp_path):
    pytest.importorskip("aeon", reason="JapaneseVowels comes with the examples extra (aeon)")
    job = JobConfig()
    job.data.task, job.data.path = "classify", "japanese_vowels"
    job.train.epochs, job.output.dir = 12, str(tmp_path)
    metrics = train.run(job, log=lambda *a: None)
    assert len(metrics["classes"]) == 9 and sum(metrics["sequences"].values()) == 640
    assert metrics["gru"]["accuracy"] > 0.6 > metrics["majority_class"]["accuracy"]


@pytest.mark.parametrize("rows, match", [
    ([["id", "kind", "a"], ["s1", "x", "1"], ["s2", "y", "2"], ["s1", "x", "3"]], "not consecutive"),
    ([["id", "kind", "a"], ["s1", "x", "1"], ["s1", "y", "2"]], "changes label"),
    ([["id", "kind", "a"], ["s1", "x", "oops"]], "not a number"),
    ([["id", "a"], ["s1", "1"]], "column 'kind' is not in"),
    ([["id", "kind", "a"], ["s1", "x", "1"], ["s2", "x", "2"]], "at least 2"),
])
def test_classify_bad_csv(tmp_path, rows, match):
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    job = parse_config(f'[data]\ntask = "classify"\npath = "{path}"\nsequence_column = "id"\n'
                             f'label_column = "kind"\n[output]\ndir = "{tmp_path}"')
    with pytest.raises(ValueError, match=match):
        train.run(job, log=lambda *a: None)


def test_classify_config_errors():
    with pytest.raises(ValueError, match="data.task .* 'text' or 'anomaly', got 'cluster'"):
        parse_config('[data]\ntask = "cluster"')
    with pytest.raises(TypeError, match="data.feature_columns .* must be list"):
        parse_config('[data]\nfeature_columns = "a"')


def _weights(path):
    from grukit import load

    return [p.detach().clone() for p in load(str(path)).parameters()]


@pytest.mark.slow
def test_cli_train_killed_and_resumed_equals_uninterrupted(tmp_path):
    """`grukit train` writes checkpoint.grukit after every epoch; a run killed with SIGKILL
    goes on with `grukit train --resume` (the job from the run folder's job.json) and ends
    with the weights and metrics of an uninterrupted run."""
    import os
    import signal
    import time

    import torch

    config = tmp_path / "job.toml"
    config.write_text("[train]\nepochs = 25\npatience = 100\n[model]\nunits = 24\n")
    cli = [sys.executable, "-m", "grukit", "train"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    full = subprocess.run([*cli, str(config), "--out", str(tmp_path / "full")], capture_output=True,
                          text=True, timeout=300, env=env)
    assert full.returncode == 0, full.stderr[-2000:]
    checkpoint = tmp_path / "killed" / "checkpoint.grukit"
    proc = subprocess.Popen([*cli, str(config), "--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 200
        tag = checkpoint.parent / "checkpoint.json"  # written right after each checkpoint
        while not (checkpoint.exists() and tag.exists()) and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL and not (tmp_path / "killed" / "model.grukit").exists()
    resumed = subprocess.run([*cli, "--resume", str(checkpoint)], capture_output=True, text=True, timeout=300,
                             env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # the network the checkpoint holds goes on; the job's other network trains after it
    assert "resuming from" in resumed.stdout
    assert resumed.stdout.count("Epoch 1/25") == full.stdout.count("Epoch 1/25") - 1
    for a, b in zip(_weights(tmp_path / "full" / "model.grukit"),
                    _weights(tmp_path / "killed" / "model.grukit"), strict=True):
        assert torch.equal(a, b)
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("full", "killed")]
    assert metrics[0]["gru"] == metrics[1]["gru"] and metrics[1]["epochs_run"] == 25


def test_cli_resume_errors(tmp_path):
    res = subprocess.run([sys.executable, "-m", "grukit", "train", "--resume", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "is not a file" in res.stderr
    (tmp_path / "bad.grukit").write_bytes(b"not a checkpoint")
    res = subprocess.run([sys.executable, "-m", "grukit", "train", "--resume",
                          str(tmp_path / "bad.grukit"), "--epochs", "1"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "not a grukit checkpoint" in res.stderr


def test_print_config_lists_every_field_and_reads_back_as_the_default_job():
    import dataclasses
    import pathlib

    from grukit.app import job as jobs

    text = jobs.template()
    assert parse_config(text, "template") == JobConfig()
    for section in dataclasses.fields(JobConfig):
        for field in dataclasses.fields(getattr(JobConfig(), section.name)):
            assert f"\n{field.name} = " in text and jobs.HELP[section.name][field.name] in text
    res = subprocess.run([sys.executable, "-m", "grukit", "train", "--print-config"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout == text
    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "train_config.md").read_text()
    assert f"```toml\n{text}```" in doc  # the docs page is the command's output


def test_the_live_progress_bar_leaves_no_tail_on_a_terminal():
    """On a pseudo-terminal the epoch line replaces the (longer) bar line whole."""
    import os
    import pty

    import numpy as np

    import grukit as gk
    from grukit import callbacks as C
    from grukit import layers as L

    master, slave = pty.openpty()
    term = os.fdopen(slave, "w")
    assert term.isatty()
    model = gk.Sequential([L.GRU(4), L.Dense(1)])
    model.compile(loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 5, 2)), np.zeros((64, 1))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[C.ProgbarLogger(1, stream=term)])
    term.flush()
    import select

    chunks = []  # one read may return part of what was written: read until nothing is left
    while select.select([master], [], [], 0.5)[0]:
        chunk = os.read(master, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    written = b"".join(chunks).decode()
    term.close()
    os.close(master)
    assert "[" in written  # the live bar was drawn

    screen, line = [], []
    for part in written.replace("\r\n", "\n").split("\n"):  # a tiny terminal: \r, erase-line, text
        cursor, line = 0, []
        i = 0
        while i < len(part):
            if part.startswith("\x1b[2K", i):
                line, i = [], i + 4
            elif part[i] == "\r":
                cursor, i = 0, i + 1
            else:
                line[cursor:cursor + 1] = [part[i]]
                cursor, i = cursor + 1, i + 1
        screen.append("".join(line))
    epoch_lines = [s for s in screen if s.startswith("8/8 - ")]
    assert len(epoch_lines) == 2
    for s in epoch_lines:  # "8/8 - 0.0s - loss: 0.1234" and nothing of the bar after it
        assert "[" not in s and "=" not in s and len(s.split("loss: ")[1].strip()) <= 10, s
