"""`grukit train` with task = "anomaly" (grukit/app/anomaly.py), end to end on small CSVs."""

import csv

import numpy as np
import pytest
import torch

from grukit import load
from grukit.app import anomaly, train
from grukit.app.job import JobConfig, parse_config


def _series(path, labels=True, seed=0, n=900):
    """A noisy two-period wave with one labelled burst in the test part."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    v = np.sin(2 * np.pi * t / 25) + 0.5 * np.sin(2 * np.pi * t / 7) + 0.05 * rng.normal(size=n)
    w = np.cos(2 * np.pi * t / 25) + 0.05 * rng.normal(size=n)
    bad = slice(800, 812)
    v[bad] += 2.5 * rng.normal(size=12)
    label = np.zeros(n, dtype=int)
    label[bad] = 1
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["t", "v", "w", *(["label"] if labels else [])])
        for i in t:
            out.writerow([i, f"{v[i]:.5f}", f"{w[i]:.5f}", *([label[i]] if labels else [])])


def _job(path, out):
    job = parse_config(f'[data]\ntask = "anomaly"\npath = "{path}"\ntime_column = "t"\n'
                       'target_columns = ["v", "w"]\nwindow = 24\n[train]\nepochs = 6\n[model]\nunits = 8\n')
    job.output.dir = str(out)
    return job


def test_anomaly_job_flags_the_burst_next_to_classical_detectors_and_predicts(tmp_path):
    data = tmp_path / "s.csv"
    _series(data)
    metrics = train.run(_job(data, tmp_path / "run"), log=lambda *a: None)
    assert metrics["steps"] == {"train": 630, "val": 90, "test": 180}
    for name in ("gru", "rolling_zscore", "isolation_forest", "pca_reconstruction"):
        assert set(metrics[name]) == {"precision", "recall", "f1", "ucr_hit", "flagged"}
    assert metrics["gru"]["ucr_hit"] and metrics["gru"]["recall"] > 0.5
    assert metrics["verdict"]["line"].startswith("the GRU")
    assert (tmp_path / "run" / "anomaly.png").read_bytes()[:4] == b"\x89PNG"
    out = train.predict(str(tmp_path / "run" / "model.grukit"), str(data), str(tmp_path / "p.csv"),
                        log=lambda *a: None)
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["time", "score", "flag"] and len(rows) == 901
    assert rows[1][1:] == ["", ""] and rows[25][1] != ""  # no score before one window
    scores = np.array([float(r[1]) for r in rows[25:]])
    assert 790 <= 24 + int(np.argmax(scores)) <= 815  # the top score is at the burst


def test_autoencoder_scoring_rebuilds_windows_and_flags_the_burst(tmp_path):
    """scoring = "autoencoder": the GRU autoencoder rebuilds the window ending at each step;
    its score peaks at the burst, and predict scores a CSV the same way."""
    data = tmp_path / "s.csv"
    _series(data)
    job = _job(data, tmp_path / "run")
    job.data.scoring = "autoencoder"
    job.train.epochs = 15
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["scoring"] == "autoencoder"
    assert metrics["gru"]["ucr_hit"] and metrics["gru"]["recall"] > 0.3
    model = load(str(tmp_path / "run" / "model.grukit"))
    assert [type(layer).__name__ for layer in model.layers][-3:] == ["RepeatVector", "GRU", "Dense"]
    out = train.predict(str(tmp_path / "run" / "model.grukit"), str(data), str(tmp_path / "p.csv"),
                        log=lambda *a: None)
    rows = list(csv.reader(open(out)))
    scores = np.array([float(r[1]) for r in rows[25:]])
    assert 790 <= 24 + int(np.argmax(scores)) <= 835  # a window that holds the burst
    # the score of a step is its window's error, in units of the training part's spread
    z = (np.array([[float(r[1]), float(r[2])] for r in list(csv.reader(open(data)))[1:]]) -
         np.array(model.extra["mean"])) / np.array(model.extra["std"])
    x, target = anomaly.inputs(z.astype("float32"), 24, "autoencoder")
    assert x.shape == (876, 24, 2) and np.array_equal(x[5], z[6:30].astype("float32"))
    error = np.sqrt((((model.predict(x) - target) / np.array(model.extra["spread"])) ** 2).mean((1, 2)))
    # then the mean of the last 8 steps' errors (data.smoothing's default; fewer at the start)
    assert model.extra["smoothing"] == 8 and metrics["smoothing"] == 8
    want = np.array([error[max(0, i - 7):i + 1].mean() for i in range(len(error))])
    np.testing.assert_allclose(scores, want, rtol=1e-5)
    # flagged: the score above its threshold and the step's own error above its own
    info = model.extra
    assert info["step_threshold"] == metrics["threshold"]["gru_step"] > 0
    flags = np.array([int(r[2]) for r in rows[25:]])
    np.testing.assert_array_equal(flags, (want > info["threshold"]) & (error > info["step_threshold"]))
    assert 0 < flags.sum() < ((want > info["threshold"]).sum())  # the own-error test takes some out
    with pytest.raises(ValueError, match="data.scoring .* must be 'forecast' or 'autoencoder', got 'vae'"):
        parse_config('[data]\ntask = "anomaly"\nscoring = "vae"')


def test_smooth_is_a_trailing_mean_and_predict_reads_old_models_unsmoothed(tmp_path):
    score = np.array([0.0, 4.0, 0.0, 0.0, 8.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(anomaly.smooth(score, 2), [0, 2, 2, 0, 4, 4])
    np.testing.assert_allclose(anomaly.smooth(score, 4), [0, 2, 4 / 3, 1, 3, 2])
    assert anomaly.smooth(score, 4).dtype == np.float32 and anomaly.smooth(score, 1) is score
    # a model saved before scores were smoothed (no "smoothing" in its settings) scores each step alone
    data = tmp_path / "s.csv"
    _series(data)
    job = _job(data, tmp_path / "run")
    job.data.smoothing = 1
    train.run(job, log=lambda *a: None)
    def scores(model_path, out):
        out = train.predict(str(model_path), str(data), str(tmp_path / out), log=lambda *a: None)
        return np.array([float(r[1]) for r in list(csv.reader(open(out)))[25:]])

    raw = scores(tmp_path / "run" / "model.grukit", "a.csv")
    model = load(str(tmp_path / "run" / "model.grukit"))
    model.extra.pop("smoothing")
    model.save(str(tmp_path / "old.grukit"), extra=model.extra)
    old = scores(tmp_path / "old.grukit", "b.csv")
    np.testing.assert_array_equal(old, raw)
    with pytest.raises(ValueError, match="data.smoothing .* must be a positive int, got 0"):
        parse_config('[data]\ntask = "anomaly"\nsmoothing = 0')


def test_labels_are_read_for_the_report_only(tmp_path):
    """The same series with and without its label column: the same model and threshold."""
    results = []
    for k, labels in enumerate((True, False)):
        data = tmp_path / f"s{k}.csv"
        _series(data, labels=labels)
        metrics = train.run(_job(data, tmp_path / f"run{k}"), log=lambda *a: None)
        model = load(str(tmp_path / f"run{k}" / "model.grukit"))
        results.append((metrics, model.extra["threshold"], [p.detach().clone() for p in model.parameters()]))
    (m0, t0, w0), (m1, t1, w1) = results
    assert t0 == t1 and all(torch.equal(a, b) for a, b in zip(w0, w1, strict=True))
    assert "gru" in m0 and "gru" not in m1 and m1["flagged_in_test"] == m0["flagged_in_test"]


def test_anomaly_scores_and_errors(tmp_path):
    ev = anomaly.evaluate(np.array([0.1, 0.2, 5.0, 0.3]), np.array([False, True, True, False]),
                          np.array([0, 0, 1, 1]))
    assert ev == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "ucr_hit": True, "flagged": 2}
    far = anomaly.evaluate(np.r_[np.zeros(300), 1.0], np.zeros(301, bool), np.r_[1, np.zeros(300)])
    assert not far["ucr_hit"]  # the top score is 300 steps from the anomaly
    short = tmp_path / "short.csv"
    short.write_text("t,v\n" + "".join(f"{i},{i % 5}\n" for i in range(60)))
    job = JobConfig()
    job.data.task, job.data.path = "anomaly", str(short)
    job.data.time_column, job.data.target_columns = "t", ["v"]
    job.output.dir = str(tmp_path / "o")
    with pytest.raises(ValueError, match="leave too few steps"):
        train.run(job, log=lambda *a: None)
    with pytest.raises(ValueError, match="threshold_quantile .* must be in \\(0, 1\\)"):
        parse_config('[data]\ntask = "anomaly"\nthreshold_quantile = 1.5')


def test_repeat_vector_follows_keras(tmp_path):
    """RepeatVector(n): (B, F) -> (B, n, F), as Keras'; in a saved Sequential it comes back."""
    import grukit as gk

    x = torch.randn(2, 3)
    y, mask = gk.layers.RepeatVector(4)(x, None)
    assert y.shape == (2, 4, 3) and mask is None and torch.equal(y[:, 2], x)
    with pytest.raises(ValueError, match="must be 2-D"):
        gk.layers.RepeatVector(4)(torch.zeros(2, 3, 1), None)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        gk.layers.RepeatVector(0)
    with pytest.raises(TypeError, match="n must be an int"):
        gk.layers.RepeatVector(2.5)
    keras = pytest.importorskip("keras")
    np.testing.assert_array_equal(np.asarray(keras.layers.RepeatVector(4)(x.numpy())), y.numpy())
    model = gk.Sequential([gk.layers.Input((5, 2)), gk.layers.GRU(3), gk.layers.RepeatVector(5),
                           gk.layers.GRU(3, return_sequences=True), gk.layers.Dense(2)])
    z = np.random.default_rng(0).normal(size=(4, 5, 2)).astype("float32")
    model.save(tmp_path / "ae.grukit")
    np.testing.assert_array_equal(load(str(tmp_path / "ae.grukit")).predict(z), model.predict(z))


def test_anomaly_target_columns_left_empty_take_every_column_but_time_and_label(tmp_path):
    """The default target_columns (empty): every column but the time and label columns; a label
    column with no anomaly in the test part is reported as such, not as no labels."""
    data = tmp_path / "s.csv"
    _series(data)
    rows = list(csv.reader(open(data)))
    assert rows[0][-1] == "label"
    with open(data, "w", newline="") as f:  # the burst's labels taken off: every label 0
        csv.writer(f).writerows([rows[0], *([*r[:-1], "0"] for r in rows[1:])])
    job = _job(data, tmp_path / "run")
    job.data.target_columns, job.train.epochs = [], 1
    lines = []
    train.run(job, log=lambda *a: lines.append(" ".join(map(str, a))))
    assert load(str(tmp_path / "run" / "model.grukit")).extra["target_columns"] == ["v", "w"]
    assert any("test part (180 steps, none labelled anomalous in 'label')" in line for line in lines)


def _wave(n=900, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    v = np.sin(2 * np.pi * t / 25) + 0.05 * rng.normal(size=n)
    v[800:812] += 2.5 * rng.normal(size=12)
    return v


def test_a_ucr_archive_file_gives_its_training_part_and_anomaly_by_its_name(tmp_path):
    """The UCR anomaly archive's files hold values alone and say the rest in their names
    (<number>_UCR_Anomaly_<name>_<training end>_<anomaly begin>_<anomaly end>.txt)."""
    v = _wave()
    path = tmp_path / "7_UCR_Anomaly_TestWave_600_800_811.txt"
    path.write_text("\n".join(f"{x:.6f}" for x in v) + "\n")
    source, values, labels, train_end = anomaly._ucr_file(str(path))
    assert source == "UCR anomaly archive 7 (TestWave)" and train_end == 600 and values.shape == (900, 1)
    assert np.flatnonzero(labels).tolist() == list(range(800, 812))
    np.testing.assert_allclose(values[:, 0], v, atol=1e-6)
    one_line = tmp_path / "8_UCR_Anomaly_TestWave_600_800_811.txt"  # a few archive files are one long line
    one_line.write_text("  ".join(f"{x:.6f}" for x in v))
    np.testing.assert_array_equal(anomaly._ucr_file(str(one_line))[1], values)
    assert anomaly._ucr_file(str(tmp_path / "s.csv")) is None  # any other name: a CSV
    job = parse_config(f'[data]\ntask = "anomaly"\npath = "{path}"\nwindow = 24\n[train]\nepochs = 6\n'
                       '[model]\nunits = 8\n')
    job.output.dir = str(tmp_path / "run")
    lines = []
    metrics = train.run(job, log=lines.append)
    assert metrics["steps"] == {"train": 600, "val": 90, "test": 210}  # the name's 600, then 10% of 900
    assert metrics["data"] == source and "12 labelled anomalous" in "\n".join(lines)
    assert metrics["gru"]["ucr_hit"]
    out = train.predict(str(tmp_path / "run" / "model.grukit"), str(path), str(tmp_path / "p.csv"),
                        log=lambda *a: None)
    rows = list(csv.reader(open(out)))
    assert len(rows) == 901 and rows[1][0] == "0" and rows[900][0] == "899"
    bad = tmp_path / "9_UCR_Anomaly_TestWave_600_800_950.txt"
    bad.write_text("\n".join(f"{x:.6f}" for x in v))
    with pytest.raises(ValueError, match="anomaly at 800..950, which do not fit its 900 values"):
        anomaly._ucr_file(str(bad))
    words = tmp_path / "10_UCR_Anomaly_TestWave_600_800_811.txt"
    words.write_text("1.0\nnan-ish\n")
    with pytest.raises(ValueError, match="other than numbers"):
        anomaly._ucr_file(str(words))


def test_split_train_steps_sets_the_training_part_of_a_csv(tmp_path):
    data = tmp_path / "s.csv"
    _series(data)
    job = _job(data, tmp_path / "run")
    job.split.train_steps = 500
    metrics = train.run(job, log=lambda *a: None)
    assert metrics["steps"] == {"train": 500, "val": 90, "test": 310}
    job.split.train_steps = 900
    with pytest.raises(ValueError, match="split.train_steps=900 leaves nothing of .*'s 900 steps"):
        train.run(job, log=lambda *a: None)
    with pytest.raises(ValueError, match="split.train_steps .* is for task = 'anomaly', not 'forecast'"):
        parse_config("[split]\ntrain_steps = 100")
    with pytest.raises(ValueError, match="split.train_steps .* must be an int >= 0, got -1"):
        parse_config('[data]\ntask = "anomaly"\n[split]\ntrain_steps = -1')
