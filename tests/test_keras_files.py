"""Keras 3 files (.keras, .weights.h5) read into grukit and written back: a real Keras
model built and saved here, the same predictions, and the same numbers bit for bit."""

import zipfile

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import layers as gl

keras = pytest.importorskip("keras")  # a dev dependency: installed by `make test`


def _random_weights(model, seed):
    rng = np.random.default_rng(seed)  # Keras starts biases at 0: random ones test them
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, size=w.shape).astype("float32"))


def _keras_model(reset_after=True, merge_mode="concat"):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((None, 3)),
        keras.layers.Masking(0.0),
        keras.layers.GRU(4, return_sequences=True, reset_after=reset_after),
        keras.layers.Bidirectional(keras.layers.GRU(5, reset_after=not reset_after), merge_mode=merge_mode),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(2, activation="softmax"),
    ])
    _random_weights(model, 1)
    return model


def _data():
    x = np.random.default_rng(2).normal(size=(4, 7, 3)).astype("float32")
    x[0, 5:] = 0  # padding the Masking layer skips
    return x


def _same_weights(a, b):
    assert len(a.weights) == len(b.weights)
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert np.array_equal(np.asarray(wa), np.asarray(wb)), (wa.path, wb.path)


@pytest.mark.parametrize("reset_after,merge_mode", [(True, "concat"), (False, "sum")])
def test_keras_file_round_trip_is_exact(tmp_path, reset_after, merge_mode):
    original = _keras_model(reset_after, merge_mode)
    original.save(tmp_path / "original.keras")
    ours = gk.interop.load_keras(tmp_path / "original.keras")
    x = _data()
    want = np.asarray(original.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x), want, rtol=0, atol=1e-5)
    assert [type(layer).__name__ for layer in ours.layers] == ["Input", "Masking", "GRU", "Bidirectional",
                                                               "Dropout", "Dense"]
    gk.interop.save_keras(ours, tmp_path / "back.keras")
    again = keras.models.load_model(tmp_path / "back.keras")
    _same_weights(again, original)  # bit for bit
    np.testing.assert_array_equal(np.asarray(again.predict(x, verbose=0)), want)


def test_weights_file_round_trip_is_exact(tmp_path):
    original = _keras_model()
    original.save_weights(tmp_path / "original.weights.h5")
    ours = gk.Sequential([gl.Input((None, 3)), gl.Masking(0.0), gl.GRU(4, return_sequences=True),
                          gl.Bidirectional(gl.GRU(5, reset_after=False)), gl.Dropout(0.2),
                          gl.Dense(2, activation="softmax")])
    gk.interop.load_keras(tmp_path / "original.weights.h5", model=ours)
    x = _data()
    np.testing.assert_allclose(ours.predict(x), np.asarray(original.predict(x, verbose=0)), rtol=0, atol=1e-5)
    gk.interop.save_keras(ours, tmp_path / "back.weights.h5")
    fresh = _keras_model()
    _random_weights(fresh, 99)
    fresh.load_weights(tmp_path / "back.weights.h5")
    _same_weights(fresh, original)


def test_a_grukit_model_becomes_a_keras_model(tmp_path):
    torch.manual_seed(0)
    ids = np.random.default_rng(3).integers(0, 20, size=(5, 8))
    ids[0, :3] = 0
    ours = gk.Sequential([gl.Embedding(20, 4, mask_zero=True), gl.GRU(6, use_bias=False),
                          gl.Dense(3, activation="relu"), gl.Dense(1, activation="sigmoid")])
    ours.compile("adam", "binary_crossentropy")
    ours.fit(ids, (ids[:, -1:] > 10).astype("float32"), epochs=2, verbose=0)
    path = gk.interop.save_keras(ours, tmp_path / "ours.keras")
    assert set(zipfile.ZipFile(path).namelist()) == {"metadata.json", "config.json", "model.weights.h5"}
    theirs = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(theirs.predict(ids, verbose=0)), ours.predict(ids),
                               rtol=0, atol=1e-5)
    back = gk.interop.load_keras(path)
    for a, b in zip(back.parameters(), ours.parameters(), strict=True):
        assert torch.equal(a, b)


def test_bad_files_and_models_are_named(tmp_path):
    with pytest.raises(FileNotFoundError):
        gk.interop.load_keras(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .keras file"):
        gk.interop.load_keras(tmp_path / "junk.keras")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.keras or \.weights\.h5"):
        gk.interop.load_keras(tmp_path / "model.bin")
    keras.utils.set_random_seed(0)
    lstm = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4)])
    lstm.save(tmp_path / "lstm.keras")
    with pytest.raises(ValueError, match="'LSTM' has no grukit counterpart"):
        gk.interop.load_keras(tmp_path / "lstm.keras")
    original = _keras_model()
    original.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(TypeError, match="built grukit.Sequential"):
        gk.interop.load_keras(tmp_path / "w.weights.h5")
    wrong = gk.Sequential([gl.Input((None, 3)), gl.Masking(0.0), gl.GRU(7, return_sequences=True),
                           gl.Bidirectional(gl.GRU(5, reset_after=False)), gl.Dense(2)])
    with pytest.raises(ValueError, match="shapes"):
        gk.interop.load_keras(tmp_path / "w.weights.h5", model=wrong)
    with pytest.raises(ValueError, match="MinGRU is not among the layers grukit reads and writes in Keras"):
        gk.interop.save_keras(gk.Sequential([gl.Input((None, 3)), gl.MinGRU(4)]), tmp_path / "m.keras")
    with pytest.raises(ValueError, match="zoneout or layer_norm"):
        gk.interop.save_keras(gk.Sequential([gl.Input((None, 3)), gl.GRU(4, zoneout=0.1)]),
                              tmp_path / "z.keras")


@pytest.mark.parametrize("value", [4_000_000_000, -3, 7])
def test_a_crafted_keras_config_is_refused_before_anything_is_allocated(tmp_path, value):
    """units far beyond any stored weight, negative, or disagreeing with the weights."""
    import json
    import time

    model = gk.Sequential([gl.Input((None, 3)), gl.GRU(5), gl.Dense(2)])
    path = gk.interop.save_keras(model, tmp_path / "m.keras")
    crafted = tmp_path / "crafted.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(crafted, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                gru = next(e for e in config["config"]["layers"] if e["class_name"] == "GRU")
                gru["config"]["units"] = value
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    start = time.perf_counter()
    with pytest.raises(ValueError):
        gk.interop.load_keras(crafted)
    assert time.perf_counter() - start < 1.0


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras: a fresh optimizer
def test_model_save_to_a_keras_name_writes_a_keras_file_that_gk_load_and_resume_read(tmp_path):
    """Keras users save to "m.keras": Keras' load_model reads the file, and so does gk.load,
    which gets grukit's own file back from inside it (compile settings, regularizers,
    grukit's options); ModelCheckpoint("best.keras") writes the training state there too, so
    fit(resume=...) goes on from it. A Keras-written .keras file loads through gk.load as
    gk.interop.load_keras reads it; a model Keras cannot hold keeps grukit's file, with a
    warning."""
    x = _data()
    y = np.random.default_rng(1).random((x.shape[0], 2)).astype("float32")
    gk.set_seed(0)
    model = gk.Sequential([gl.Input((None, 3)), gl.Masking(0.0), gl.GRU(4, kernel_regularizer="l2"),
                           gl.Dense(2)])
    model.compile("adam", "mse", metrics=["mae"])
    checkpoint = tmp_path / "best.keras"
    model.fit(x, y, epochs=2, verbose=0, callbacks=[gk.callbacks.ModelCheckpoint(str(checkpoint))])
    want = model.predict(x)
    theirs = keras.models.load_model(checkpoint)
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), want, atol=1e-6)
    ours = gk.load(str(checkpoint))
    np.testing.assert_array_equal(ours.predict(x), want)
    assert ours.compiled and [n for n, _ in ours.metric_fns] == ["mae"] and len(ours.losses) == 1
    # resume from the Keras-named checkpoint equals an uninterrupted run
    gk.set_seed(0)
    whole = gk.Sequential([gl.Input((None, 3)), gl.Masking(0.0), gl.GRU(4, kernel_regularizer="l2"),
                           gl.Dense(2)])
    whole.compile("adam", "mse", metrics=["mae"])
    whole.fit(x, y, epochs=4, verbose=0)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[gk.callbacks.ModelCheckpoint(str(checkpoint))],
              resume=str(checkpoint))
    np.testing.assert_array_equal(model.predict(x), whole.predict(x))
    # a file Keras wrote: gk.load reads layers, weights and compile settings; resume says why not
    theirs.save(tmp_path / "keras_wrote.keras")
    read = gk.load(str(tmp_path / "keras_wrote.keras"))
    np.testing.assert_allclose(read.predict(x), np.asarray(theirs.predict(x, verbose=0)), atol=1e-6)
    assert read.compiled and [n for n, _ in read.metric_fns] == ["mae"]
    with pytest.raises(ValueError, match="written by Keras: it holds no training state"):
        model.fit(x, y, epochs=5, verbose=0, resume=str(tmp_path / "keras_wrote.keras"))
    # layer norm has no Keras counterpart: grukit's file under the name, and a warning that says why
    norm = gk.Sequential([gl.Input((None, 3)), gl.GRU(4, layer_norm=True)])
    with pytest.warns(UserWarning, match="grukit's own file .* 'norm.keras': layer 'gru' uses zoneout or "
                                         "layer_norm"):
        norm.save(str(tmp_path / "norm.keras"))
    np.testing.assert_array_equal(gk.load(str(tmp_path / "norm.keras")).predict(x), norm.predict(x))


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras: a fresh optimizer
def test_compile_settings_travel_both_ways_through_keras_files(tmp_path):
    """A model compiled with names both know comes out of the other library compiled the same
    way (optimizer, learning rate, loss, metrics; the optimizer's state starts afresh, which
    Keras notes in a warning); settings grukit has not (a metric it lacks) leave the loaded
    model uncompiled, with a warning that says so."""
    x = _data()
    y = np.random.default_rng(3).random((x.shape[0], 1)).astype("float32")
    ours = gk.Sequential([gl.Input((None, 3)), gl.GRU(4), gl.Dense(1)])
    ours.compile("rmsprop", "mse", metrics=["mae"], learning_rate=0.005)
    ours.save(tmp_path / "ours.keras")
    theirs = keras.models.load_model(tmp_path / "ours.keras")
    assert theirs.compiled and type(theirs.optimizer).__name__ == "RMSprop"
    assert float(theirs.optimizer.learning_rate) == pytest.approx(0.005)
    np.testing.assert_allclose(theirs.evaluate(x, y, verbose=0), ours.evaluate(x, y), rtol=1e-5)
    keras_model = _keras_model()
    keras_model.compile(keras.optimizers.Adam(0.02), keras.losses.CategoricalCrossentropy(),
                        metrics=["accuracy"])
    keras_model.save(tmp_path / "theirs.keras")
    read = gk.load(str(tmp_path / "theirs.keras"))
    assert read.compiled and isinstance(read.optimizer_spec, gk.optimizers.Adam)
    assert read.optimizer_spec.learning_rate == pytest.approx(0.02)
    assert (read.loss_name, read.compile_config["metrics"]) == ("CategoricalCrossentropy", ["accuracy"])
    labels = np.eye(2, dtype="float32")[[0, 1, 1, 0]]
    np.testing.assert_allclose(read.evaluate(x, labels), keras_model.evaluate(x, labels, verbose=0),
                               rtol=1e-5)
    keras_model.compile("adam", "categorical_crossentropy", metrics=[keras.metrics.AUC()])
    keras_model.save(tmp_path / "auc.keras")
    with pytest.warns(UserWarning, match="auc.keras: the Keras model's compile settings were not taken"):
        assert not gk.load(str(tmp_path / "auc.keras")).compiled
