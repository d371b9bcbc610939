"""`grukit train` / `grukit predict`: the default job on the shipped series, configs, errors."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from grukit import datasets, train


def test_shipped_co2_series():
    dates, values = datasets.load_co2()
    assert len(dates) == values.shape[0] == 2284 and values.shape[1] == 1
    assert dates[0] == "1958-03-29" and dates[-1] == "2001-12-29"
    assert np.isfinite(values).all() and 310 < values.min() < values.max() < 380  # gaps filled


def test_default_job_beats_seasonal_naive_and_writes_its_outputs(tmp_path):
    job = train.JobConfig()
    job.train.epochs, job.output.dir = 8, str(tmp_path)
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["gru"]["rmse"] < metrics["seasonal_naive"]["rmse"]
    assert metrics["gru"]["mae"] < metrics["seasonal_naive"]["mae"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["gru"] == metrics["gru"]
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
    res = subprocess.run([sys.executable, "-m", "grukit.cli", "train", str(config), "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "seasonal_naive" in res.stdout and (tmp_path / "run" / "model.grukit").exists()


@pytest.mark.parametrize(
    "toml,exc,match",
    [
        ("[data]\nwindw = 3\n", ValueError, r"unknown field data.windw .* known fields of \[data\]"),
        ("[dataa]\nwindow = 3\n", ValueError, r"unknown section \[dataa\]"),
        ("[data]\nwindow = 'big'\n", TypeError, r"data.window .* must be int"),
        ("[data]\nwindow = 0\n", ValueError, r"data.window .* must be positive"),
        ("[split]\ntest_fraction = 0.95\n", ValueError, r"split fractions"),
        ("[data\n", ValueError, r"not valid TOML"),
    ],
)
def test_bad_configs(toml, exc, match):
    with pytest.raises(exc, match=match):
        train.parse_config(toml, "job.toml")


def test_missing_column_and_too_short_series(tmp_path):
    data = tmp_path / "s.csv"
    data.write_text("date,value\n" + "".join(f"{i},{i}\n" for i in range(20)))
    job = train.JobConfig()
    job.data.path, job.data.target_columns, job.output.dir = str(data), ["co2"], str(tmp_path)
    with pytest.raises(ValueError, match=r"column 'co2' is not in .*columns are \['date', 'value'\]"):
        train.run(job, log=lambda *a: None)
    job.data.target_columns = ["value"]
    with pytest.raises(ValueError, match=r"shorter than one window"):
        train.run(job, log=lambda *a: None)
    data.write_text("date,value\n1,2\n2,oops\n")
    with pytest.raises(ValueError, match=r"line 3, column 'value': 'oops' is not a number"):
        datasets.read_series(str(data), "date", ["value"])


def test_cli_reports_user_errors_plainly(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[model]\nsize = 3\n")
    res = subprocess.run([sys.executable, "-m", "grukit.cli", "train", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "unknown field model.size" in res.stderr
    assert "Traceback" not in res.stderr
