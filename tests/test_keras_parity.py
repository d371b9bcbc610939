"""The Keras face behaves as Keras 3 does, held against Keras itself on the same weights:
masked outputs, masks in the loss and metrics, go_backwards' mask, stateful layers,
Bidirectional's return_state / merge_mode=None / initial_state, GRU initial_state."""

import copy

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import layers as gl
from grukit.training import keras_weights

keras = pytest.importorskip("keras")  # a dev dependency: installed by `make test`

ATOL = 1e-5


def _randomise(model, seed):
    rng = np.random.default_rng(seed)  # Keras starts biases at 0: random ones test them
    for w in model.weights:
        w.assign(rng.normal(0, 0.5, size=w.shape).astype("float32"))


def _ids():
    """Token ids with padding at the end, at the start and in the middle (holes)."""
    ids = np.random.default_rng(3).integers(1, 20, size=(5, 8))
    ids[0, 5:] = 0
    ids[1, :3] = 0
    ids[2, [1, 2, 6]] = 0
    ids[3, :] = 0  # a row with no real step at all
    return ids


def _through_file(model, tmp_path, name="m.keras"):
    model.save(tmp_path / name)
    return gk.interop.load_keras(tmp_path / name)


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("reset_after", [True, False])
def test_masked_steps_output_what_keras_outputs(tmp_path, zero_output_for_mask, reset_after):
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([
        keras.Input((8,), dtype="int32"),
        keras.layers.Embedding(20, 3, mask_zero=True),
        keras.layers.GRU(4, return_sequences=True, reset_after=reset_after,
                         zero_output_for_mask=zero_output_for_mask),
        keras.layers.Dense(2),
    ])
    _randomise(theirs, 1)
    ours = _through_file(theirs, tmp_path)
    ids = _ids()
    want = np.asarray(theirs.predict(ids, verbose=0))
    got = ours.predict(ids)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)  # every step, padded ones too
    if not zero_output_for_mask:  # carried: the padded tail repeats the last real step
        np.testing.assert_allclose(got[0, 5:], np.repeat(got[0, 4:5], 3, 0), atol=0)


def test_stacked_go_backwards_passes_the_input_mask_on_as_keras(tmp_path):
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([
        keras.Input((8,), dtype="int32"),
        keras.layers.Embedding(20, 3, mask_zero=True),
        keras.layers.GRU(4, return_sequences=True, go_backwards=True),
        keras.layers.GRU(3, return_sequences=True),
        keras.layers.GRU(2),
    ])
    _randomise(theirs, 2)
    ours = _through_file(theirs, tmp_path)
    ids = _ids()
    np.testing.assert_allclose(ours.predict(ids), np.asarray(theirs.predict(ids, verbose=0)), atol=ATOL)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_under_a_mask_equals_keras(tmp_path, return_sequences):
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([
        keras.Input((8,), dtype="int32"),
        keras.layers.Embedding(20, 3, mask_zero=True),
        keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=return_sequences)),
        keras.layers.Dense(2),
    ])
    _randomise(theirs, 3)
    ours = _through_file(theirs, tmp_path)
    ids = _ids()
    np.testing.assert_allclose(ours.predict(ids), np.asarray(theirs.predict(ids, verbose=0)), atol=ATOL)


def _tagging_models(tmp_path):
    """Per-step labels under a mask: Keras' model and grukit's copy of it."""
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([
        keras.Input((8,), dtype="int32"),
        keras.layers.Embedding(20, 3, mask_zero=True),
        keras.layers.GRU(4, return_sequences=True),
        keras.layers.Dense(3, activation="softmax"),
    ])
    _randomise(theirs, 4)
    ours = _through_file(theirs, tmp_path)
    ids = _ids()
    ids[3, 0] = 5  # every row real somewhere, so that each has a loss
    labels = np.random.default_rng(5).integers(0, 3, size=(5, 8))
    return theirs, ours, ids, labels


@pytest.mark.parametrize("weighted", [False, True])
def test_evaluate_leaves_masked_steps_out_as_keras(tmp_path, weighted):
    theirs, ours, ids, labels = _tagging_models(tmp_path)
    sw = np.random.default_rng(6).uniform(0, 2, size=(5, 8)).astype("float32") if weighted else None
    theirs.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    want = theirs.evaluate(ids, labels, sample_weight=sw, batch_size=2, verbose=0)
    got = ours.evaluate(ids, labels, sample_weight=sw, batch_size=2)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    unmasked = gk.Sequential([gl.Input((8,), dtype="int64"), gl.Embedding(20, 3), *ours.layers[2:]])
    unmasked.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert abs(unmasked.evaluate(ids, labels, sample_weight=sw, batch_size=2) - want[0]) > 1e-3


def test_fit_trains_on_real_steps_only_as_keras(tmp_path):
    theirs, ours, ids, labels = _tagging_models(tmp_path)
    sw = np.array([[1.0] * 8, [2.0] * 8, [0.5] * 8, [1.0] * 8, [3.0] * 8], dtype="float32")
    sw[:, -1] = 0.0  # per-step weights
    theirs.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                   metrics=["accuracy"])
    ours.compile(optimizer="sgd", learning_rate=0.5, loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    h_k = theirs.fit(ids, labels, sample_weight=sw, batch_size=5, epochs=3, shuffle=False, verbose=0)
    h_o = ours.fit(ids, labels, sample_weight=sw, batch_size=5, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_o.history["loss"], h_k.history["loss"], rtol=1e-4)
    np.testing.assert_allclose(h_o.history["accuracy"], h_k.history["accuracy"], rtol=1e-5)
    np.testing.assert_allclose(ours.predict(ids), np.asarray(theirs.predict(ids, verbose=0)), atol=1e-4)


def test_stateful_layer_starts_at_zeros_and_takes_the_first_real_batch(tmp_path):
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((4, 3), batch_size=5), keras.layers.GRU(2, stateful=True)])
    _randomise(theirs, 6)
    ours = _through_file(theirs, tmp_path)
    x1, x2 = np.random.default_rng(7).normal(size=(2, 5, 4, 3)).astype("float32")
    for x in (x1, x2):  # the state carries from the first call to the second
        np.testing.assert_allclose(ours.predict(x), np.asarray(theirs.predict(x, verbose=0)), atol=ATOL)
    ours.reset_state()
    theirs.layers[0].reset_state()
    np.testing.assert_allclose(ours.predict(x2), np.asarray(theirs.predict(x2, verbose=0)), atol=ATOL)
    built_by_input = gk.Sequential([gl.Input((4, 3)), gl.GRU(2, stateful=True)])
    assert built_by_input.layers[1].state is None  # the build pass leaves no state behind
    assert built_by_input.predict(x1).shape == (5, 2)


def _keras_bidirectional(merge_mode, return_state=True, return_sequences=True):
    keras.utils.set_random_seed(0)
    layer = keras.layers.Bidirectional(
        keras.layers.GRU(4, return_sequences=return_sequences, return_state=return_state),
        merge_mode=merge_mode)
    layer.build((2, 6, 3))
    rng = np.random.default_rng(8)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])
    ours = gl.Bidirectional(gl.GRU(4, return_sequences=return_sequences, return_state=return_state),
                            merge_mode=merge_mode)
    ours(torch.zeros(2, 6, 3), None)  # builds it
    gru = ours.layer.gru
    keras_weights.gru_from_keras(gru, "", layer.forward_layer.get_weights(), "forward")
    keras_weights.gru_from_keras(gru, "_reverse", layer.backward_layer.get_weights(), "backward")
    return layer, ours.eval()


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_bidirectional_return_state_merge_none_and_initial_state_equal_keras(merge_mode, with_initial_state):
    theirs, ours = _keras_bidirectional(merge_mode)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 6, 3, generator=g)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    state = [torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)] if with_initial_state else None
    want = theirs(x, mask=mask, initial_state=state)
    with torch.no_grad():
        got, out_mask = ours(x, mask, initial_state=state)
    assert isinstance(got, tuple) and len(got) == len(want) == (4 if merge_mode is None else 3)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a.numpy(), np.asarray(b.detach()), atol=ATOL)
    assert torch.equal(out_mask, mask)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_gru_initial_state_equals_keras(go_backwards):
    keras.utils.set_random_seed(0)
    theirs = keras.layers.GRU(4, return_sequences=True, return_state=True, go_backwards=go_backwards)
    theirs.build((3, 5, 2))
    _randomise(theirs, 10)
    ours = gl.GRU(4, return_sequences=True, return_state=True, go_backwards=go_backwards)
    ours(torch.zeros(3, 5, 2), None)  # builds it
    keras_weights.gru_from_keras(ours.gru, "", theirs.get_weights(), "gru")
    g = torch.Generator().manual_seed(11)
    x, h0 = torch.randn(3, 5, 2, generator=g), torch.randn(3, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    y_k, h_k = theirs(x, mask=mask, initial_state=h0)
    with torch.no_grad():
        (y_o, h_o), out_mask = ours(x, mask, initial_state=h0)
    np.testing.assert_allclose(y_o.numpy(), np.asarray(y_k.detach()), atol=ATOL)
    np.testing.assert_allclose(h_o.numpy(), np.asarray(h_k.detach()), atol=ATOL)
    assert torch.equal(out_mask, mask)  # the input's mask, also going backwards


def test_bad_initial_state_and_merge_mode_are_named():
    layer = gl.GRU(4)
    with pytest.raises(ValueError, match="initial_state"):
        layer(torch.randn(2, 3, 5), None, initial_state=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="initial_state must hold 2"):
        gl.Bidirectional(gl.GRU(4))(torch.randn(2, 3, 5), None, initial_state=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="merge_mode"):
        gl.Bidirectional(gl.GRU(4), merge_mode="max")
    model = gk.Sequential([gl.GRU(3), gl.Dense(1)])
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(np.zeros((4, 2, 1)), np.zeros((4, 1)), sample_weight=np.ones(3), verbose=0)


@pytest.mark.parametrize("merge_mode,return_sequences", [("concat", True), ("concat", False), ("ave", True),
                                                         (None, True)])
def test_bidirectional_with_its_own_backward_layer_equals_keras(tmp_path, merge_mode, return_sequences):
    """Keras' backward_layer=: a second GRU (other units, other reset convention) runs the
    backward direction; under a mask, with return_state and initial_state; through a .keras file."""
    keras.utils.set_random_seed(0)
    units_b = 4 if merge_mode == "ave" else 3
    theirs = keras.layers.Bidirectional(
        keras.layers.GRU(4, return_sequences=return_sequences, return_state=True),
        backward_layer=keras.layers.GRU(units_b, return_sequences=return_sequences, return_state=True,
                                        go_backwards=True, reset_after=False),
        merge_mode=merge_mode)
    theirs.build((2, 6, 3))
    rng = np.random.default_rng(12)
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in theirs.get_weights()])
    backward = gl.GRU(units_b, return_sequences=return_sequences, return_state=True, go_backwards=True,
                      reset_after=False)
    ours = gl.Bidirectional(gl.GRU(4, return_sequences=return_sequences, return_state=True),
                            backward_layer=backward, merge_mode=merge_mode)
    ours(torch.zeros(2, 6, 3), None)  # builds it
    keras_weights.gru_from_keras(ours.layer.gru, "", theirs.forward_layer.get_weights(), "forward")
    keras_weights.gru_from_keras(ours.backward_layer.gru, "", theirs.backward_layer.get_weights(), "backward")
    g = torch.Generator().manual_seed(13)
    x = torch.randn(2, 6, 3, generator=g)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    state = [torch.randn(2, 4, generator=g), torch.randn(2, units_b, generator=g)]
    want = theirs(x, mask=mask, initial_state=state)
    with torch.no_grad():
        got, _ = ours.eval()(x, mask, initial_state=state)
    assert len(got) == len(want) == (4 if merge_mode is None else 3)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a.numpy(), np.asarray(b.detach()), atol=ATOL)
    # through a .keras file (the backward layer's own config and weights), and back
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.Bidirectional(
        keras.layers.GRU(4, return_sequences=return_sequences),
        backward_layer=keras.layers.GRU(units_b, return_sequences=return_sequences, go_backwards=True,
                                        reset_after=False), merge_mode=merge_mode or "concat")])
    _randomise(model, 14)
    loaded = _through_file(model, tmp_path)
    assert loaded.layers[-1].backward_layer is not None and loaded.layers[-1].backward_layer.units == units_b
    xs = x.numpy()
    np.testing.assert_allclose(loaded.predict(xs), np.asarray(model.predict(xs, verbose=0)), atol=ATOL)
    gk.interop.save_keras(loaded, tmp_path / "again.keras")
    back = keras.models.load_model(tmp_path / "again.keras")
    np.testing.assert_allclose(np.asarray(back.predict(xs, verbose=0)), loaded.predict(xs), atol=ATOL)


def test_backward_layer_errors_say_what_keras_requires():
    with pytest.raises(ValueError, match="different go_backwards"):
        gl.Bidirectional(gl.GRU(4), backward_layer=gl.GRU(4))
    with pytest.raises(ValueError, match="same return_sequences"):
        gl.Bidirectional(gl.GRU(4, return_sequences=True), backward_layer=gl.GRU(4, go_backwards=True))
    with pytest.raises(ValueError, match="same units"):
        gl.Bidirectional(gl.GRU(4), merge_mode="sum", backward_layer=gl.GRU(3, go_backwards=True))
    with pytest.raises(TypeError, match="backward_layer must be"):
        gl.Bidirectional(gl.GRU(4), backward_layer=gl.Dense(4))


@pytest.mark.parametrize("name", ["mse", "mean_absolute_error", "huber", "log_cosh", "mape",
                                  "mean_squared_logarithmic_error", "MeanSquaredError", "Huber", "LogCosh"])
def test_loss_names_compute_keras_losses(name):
    """Each loss name (or Keras class name) gives Keras' per-sample values."""
    from grukit.training import losses

    rng = np.random.default_rng(0)
    y_true = (rng.random((6, 4)) * 3 - 0.5).astype("float32")
    y_pred = (rng.random((6, 4)) * 3 - 0.5).astype("float32")
    want = np.asarray(keras.losses.get(losses.keras_name(name))(y_true, y_pred))
    got = losses.LOSSES[losses.keras_name(name)](torch.tensor(y_true), torch.tensor(y_pred)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_root_mean_squared_error_is_the_root_of_the_epochs_mean():
    """As Keras' RootMeanSquaredError: the square root of the mean over every batch of the
    epoch, not the mean of each batch's root."""
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 5, 2)).astype("float32"), rng.random((40, 1)).astype("float32")
    model = gk.Sequential([gl.GRU(4, input_shape=(5, 2)), gl.Dense(1)])
    model.compile("sgd", "mse", metrics=["root_mean_squared_error", "mse", "RootMeanSquaredError"])
    _, rmse, mse, rmse2 = model.evaluate(x, y, batch_size=7, verbose=0)
    pred = model.predict(x)
    assert mse == pytest.approx(float(((pred - y) ** 2).mean()), rel=1e-5)
    assert rmse == rmse2 == pytest.approx(np.sqrt(mse), rel=1e-6)
    m = keras.metrics.RootMeanSquaredError()
    for i in range(0, 40, 7):
        m.update_state(y[i:i + 7], pred[i:i + 7])
    assert rmse == pytest.approx(float(m.result()), rel=1e-5)


def test_get_and_set_weights_carry_a_model_to_keras_and_back():
    """model.get_weights() holds Keras' arrays (layout, gate order, count): a Keras model of
    the same layers takes them with set_weights and computes the same, and back."""
    rng = np.random.default_rng(2)
    x = rng.random((6, 5, 2)).astype("float32")

    def ours():
        return gk.Sequential([gl.Bidirectional(gl.GRU(4, return_sequences=True), input_shape=(5, 2)),
                              gl.GRU(3, reset_after=False), gl.Dense(1)])

    theirs = keras.Sequential([keras.Input((5, 2)),
                               keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True)),
                               keras.layers.GRU(3, reset_after=False), keras.layers.Dense(1)])
    model = ours()
    assert [w.shape for w in model.get_weights()] == [w.shape for w in theirs.get_weights()]
    theirs.set_weights(model.get_weights())
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x), rtol=0, atol=1e-5)
    theirs.set_weights([rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()])
    back = ours()
    back.set_weights(theirs.get_weights())
    np.testing.assert_allclose(back.predict(x), theirs.predict(x, verbose=0), rtol=0, atol=1e-5)
    for got, want in zip(back.layers[2].get_weights(), theirs.layers[1].get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)  # layer by layer too, bit for bit
    with pytest.raises(ValueError, match=r"weights must hold 6 arrays of shapes .* Bidirectional, got 1"):
        back.layers[1].set_weights([np.zeros((2, 12))])
    with pytest.raises(ValueError, match=r"GRU variables must have shapes"):
        back.layers[2].set_weights([np.zeros((2, 2))] * 3)
    with pytest.raises(ValueError, match="get_weights needs a built model"):
        gk.Sequential([gl.GRU(3)]).get_weights()


def test_keras_model_helpers():
    rng = np.random.default_rng(3)
    x, y = rng.random((12, 5, 2)).astype("float32"), rng.random((12, 1)).astype("float32")
    model = gk.Sequential([gl.GRU(4, input_shape=(5, 2), name="rnn"), gl.Dense(1, name="head")])
    model.compile("sgd", "mse", metrics=["mae"])
    assert model.count_params() == sum(p.numel() for p in model.parameters()) == 3 * 4 * (2 + 4 + 2) + 5
    assert model.evaluate(x, y, return_dict=True) == dict(zip(["loss", "mae"], model.evaluate(x, y),
                                                              strict=True))
    before = model.test_on_batch(x, y)
    assert before == pytest.approx(model.evaluate(x, y, batch_size=12))
    assert model.train_on_batch(x, y) == pytest.approx(before)  # the step's loss, before the step
    after = model.test_on_batch(x, y, return_dict=True)
    assert after["loss"] < before[0]  # one step of gradient descent on the same batch
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x))
    out = model(x)  # a NumPy array in: a tensor out, as a Keras model called on one
    assert torch.is_tensor(out) and out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), model.predict(x), rtol=0, atol=1e-6)
    assert model.get_layer("head") is model.layers[-1] and model.get_layer(index=1).name == "rnn"
    with pytest.raises(ValueError, match="no layer is named 'x'"):
        model.get_layer("x")
    assert model.pop().name == "head" and [la.name for la in model.layers] == [None, "rnn"]


def test_class_weight_weighs_the_training_loss_as_keras_does():
    rng = np.random.default_rng(4)
    x = rng.random((20, 5, 2)).astype("float32")
    y = (rng.random((20, 1)) < 0.25).astype("float32")
    cw = {0: 1.0, 1: 3.0}
    ours = gk.Sequential([gl.GRU(4, input_shape=(5, 2)), gl.Dense(1, activation="sigmoid")])
    theirs = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(4),
                               keras.layers.Dense(1, activation="sigmoid")])
    theirs.set_weights(ours.get_weights())
    ours.compile("sgd", "binary_crossentropy")
    theirs.compile(keras.optimizers.SGD(), "binary_crossentropy")
    pred = ours.predict(x)[:, 0]
    per_sample = -(y[:, 0] * np.log(pred) + (1 - y[:, 0]) * np.log(1 - pred))
    want = float((per_sample * np.where(y[:, 0] == 1, 3.0, 1.0)).mean())  # Keras: sum(w * loss) / N
    got = ours.fit(x, y, batch_size=20, epochs=1, shuffle=False, verbose=0,
                   class_weight=cw).history["loss"][0]
    keras_loss = theirs.fit(x, y, batch_size=20, epochs=1, shuffle=False, verbose=0,
                            class_weight=cw).history["loss"][0]
    assert got == pytest.approx(want, rel=1e-5) and got == pytest.approx(keras_loss, rel=1e-4)
    # validation samples are not weighed; one-hot and per-step targets take their class's weight
    from grukit.training.data import class_sample_weights

    np.testing.assert_array_equal(class_sample_weights(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), {0: 2, 1: 5}),
                                  [5.0, 2.0])
    per_step = class_sample_weights(torch.tensor([[0, 2], [1, 1]]), {0: 1, 1: 2, 2: 3})
    np.testing.assert_array_equal(per_step, [[1.0, 3.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match=r"no weight for class 1 \(the classes in y: \[0, 1\]\)"):
        ours.fit(x, y, epochs=1, verbose=0, class_weight={0: 1.0})
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        ours.fit(x, y, epochs=1, verbose=0, class_weight=[1.0, 3.0])
    history = ours.fit(x, y, epochs=1, verbose=0, validation_split=0.5, class_weight=cw)
    ours.compile("sgd", "binary_crossentropy")
    assert history.history["val_loss"][0] == pytest.approx(
        ours.evaluate(x[10:], y[10:], batch_size=20), rel=1e-5)  # the validation loss: unweighted


def test_time_distributed_dense_equals_keras(tmp_path):
    """TimeDistributed(Dense) over a GRU's sequence: Keras' outputs on the same weights; it
    saves and loads, and refuses a 2-D input as Keras does."""
    rng = np.random.default_rng(5)
    x = rng.random((4, 6, 3)).astype("float32")
    ours = gk.Sequential([gl.GRU(5, return_sequences=True, input_shape=(6, 3)),
                          gl.TimeDistributed(gl.Dense(2, activation="softmax"))])
    theirs = keras.Sequential([keras.Input((6, 3)), keras.layers.GRU(5, return_sequences=True),
                               keras.layers.TimeDistributed(keras.layers.Dense(2, activation="softmax"))])
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=0, atol=1e-5)
    ours.save(str(tmp_path / "td.grukit"))
    np.testing.assert_array_equal(gk.load(str(tmp_path / "td.grukit")).predict(x), ours.predict(x))
    with pytest.raises(ValueError, match="TimeDistributed input must be 3-D"):
        gk.Sequential([gl.GRU(4, input_shape=(6, 3)), gl.TimeDistributed(gl.Dense(1))])
    with pytest.raises(TypeError, match="layer must be a grukit.layers.Dense or Dropout"):
        gl.TimeDistributed(gl.GRU(3))


def test_save_weights_and_load_weights_are_keras_weights_files(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.random((3, 5, 2)).astype("float32")
    ours = gk.Sequential([gl.GRU(4, input_shape=(5, 2)), gl.Dense(1)])
    theirs = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(4), keras.layers.Dense(1)])
    ours.save_weights(str(tmp_path / "ours.weights.h5"))
    theirs.load_weights(str(tmp_path / "ours.weights.h5"))
    np.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x), rtol=0, atol=1e-5)
    theirs.set_weights([rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save_weights(str(tmp_path / "theirs.weights.h5"))
    ours.load_weights(str(tmp_path / "theirs.weights.h5"))
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"path must end in .weights.h5 .*got 'w.h5'"):
        ours.save_weights(str(tmp_path / "w.h5"))
    with pytest.raises(ValueError, match="save_weights needs a built model"):
        gk.Sequential([gl.GRU(2)]).save_weights(str(tmp_path / "x.weights.h5"))


def test_early_stopping_and_reduce_lr_on_plateau_follow_keras_epoch_by_epoch():
    """On random loss sequences and options, the epoch EarlyStopping stops at and the best epoch
    it restores, and ReduceLROnPlateau's learning rate after every epoch, equal Keras' callbacks
    driven with the same logs (patience counts as Keras counts: patience 1 stops at the first
    epoch without improvement)."""
    from grukit import callbacks

    theirs_model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    theirs_model.compile("sgd", "mse")
    ours_model = gk.Sequential([gl.Dense(1, input_shape=(2,))])
    rng = np.random.default_rng(7)
    for _ in range(150):
        losses = [float(v) for v in np.round(rng.random(8), 1)]
        options = dict(patience=int(rng.integers(0, 4)), min_delta=float(rng.choice([0.0, 0.05])),
                       baseline=None if rng.random() < 0.5 else float(rng.choice([0.3, 0.5])),
                       start_from_epoch=int(rng.integers(0, 3)), restore_best_weights=True)
        seen = []
        for model, cls in ((theirs_model, keras.callbacks.EarlyStopping),
                           (ours_model, callbacks.EarlyStopping)):
            cb = cls(monitor="loss", **options)
            cb.set_model(model)
            model.stop_training = False
            cb.on_train_begin()
            stopped = None
            for epoch, loss in enumerate(losses):
                cb.on_epoch_end(epoch, {"loss": loss})
                if model.stop_training:
                    stopped = epoch
                    break
            seen.append((stopped, cb.best_epoch))
        assert seen[0] == seen[1], (losses, options)

        options = dict(patience=int(rng.integers(0, 4)), factor=0.5, cooldown=int(rng.integers(0, 3)),
                       min_delta=float(rng.choice([0.0, 0.05])))
        theirs_model.optimizer.learning_rate.assign(1.0)
        ours_model.optimizer = torch.optim.SGD(ours_model.parameters(), lr=1.0)
        rates = []
        for model, cls, rate in ((theirs_model, keras.callbacks.ReduceLROnPlateau,
                                  lambda: float(theirs_model.optimizer.learning_rate)),
                                 (ours_model, callbacks.ReduceLROnPlateau,
                                  lambda: ours_model.optimizer.param_groups[0]["lr"])):
            cb = cls(monitor="loss", **options)
            cb.set_model(model)
            cb.on_train_begin()
            lrs = []
            for epoch, loss in enumerate(losses):
                cb.on_epoch_end(epoch, {"loss": loss})
                lrs.append(round(rate(), 6))
            rates.append(lrs)
        assert rates[0] == rates[1], (losses, options)


def test_keras_layout_keeps_a_float64_grus_precision_and_plateau_cooldown_resumes():
    """Weights set from Keras-layout arrays keep the module's dtype (float64 stays exact), and
    ReduceLROnPlateau's cooldown counter travels in the callback state a checkpoint saves."""
    from grukit import callbacks

    gru = gk.GRU(2, 3, batch_first=True, dtype=torch.float64)
    arrays = [a + 1e-12 for a in keras_weights.gru_to_keras(gru, "")]  # not representable in float32
    keras_weights.gru_from_keras(gru, "", arrays, "gru")
    for got, want in zip(keras_weights.gru_to_keras(gru, ""), arrays, strict=True):
        np.testing.assert_array_equal(got, want)
    plateau = callbacks.ReduceLROnPlateau(monitor="loss", cooldown=3)
    plateau.cooling = 2
    again = callbacks.ReduceLROnPlateau(monitor="loss", cooldown=3)
    again.set_state(plateau.get_state())
    assert again.cooling == 2


def _gen(items):
    """A Python generator, the kind of iterator Keras takes (grukit takes any)."""
    yield from items


def _batches(seed, n, rows=4):
    rng = np.random.default_rng(seed)
    return [(rng.random((rows, 5, 2)).astype("float32"), rng.random((rows, 1)).astype("float32"))
            for _ in range(n)]


@pytest.mark.filterwarnings("ignore:.*ran out")
def test_fit_on_generators_with_steps_follows_keras_epoch_by_epoch():
    """Keras' data path: a generator of (x, y) batches with steps_per_epoch and validation_steps
    (each epoch draws on from where the last stopped), arrays with steps_per_epoch (the draws
    go on through the pass; a pass that ends within an epoch ends it), validation_freq,
    evaluate/predict with steps, and a generator that runs out; the losses equal Keras' own
    on the same weights. One difference, on purpose: Keras 3 keeps a generator's first two
    batches (to learn their shapes) and serves them again at every new pass, so each of its
    validations with validation_steps=2 sees the same two batches; grukit's draw on (the
    next two), so only the first validation is compared here and the order of draws is
    checked below."""
    ours = gk.Sequential([gl.GRU(3, input_shape=(5, 2)), gl.Dense(1)])
    theirs = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(3), keras.layers.Dense(1)])
    theirs.set_weights(ours.get_weights())
    ours.compile("sgd", "mse", metrics=["mae"])
    theirs.compile(keras.optimizers.SGD(), "mse", metrics=["mae"])
    train, val = _batches(0, 40), _batches(1, 40)

    def fits(model):
        got = model.fit(_gen(train), steps_per_epoch=3, epochs=4, verbose=0, validation_data=_gen(val),
                        validation_steps=2, validation_freq=2).history
        x = np.concatenate([b[0] for b in train[:5]])
        y = np.concatenate([b[1] for b in train[:5]])
        got_arrays = model.fit(x, y, batch_size=4, steps_per_epoch=3, epochs=3, shuffle=False, verbose=0,
                               validation_data=(x, y), validation_steps=1, validation_batch_size=8).history
        evaluated = model.evaluate(_gen(val[20:]), steps=3, verbose=0)
        predicted = model.predict(_gen([(b[0],) for b in val[:3]]), steps=2, verbose=0)
        ran_out = model.fit(_gen(train[:7]), steps_per_epoch=3, epochs=5, verbose=0).history
        return got, got_arrays, evaluated, predicted, ran_out

    a, b = fits(ours), fits(theirs)
    for mine, keras_one in zip(a[:2], b[:2], strict=True):
        assert sorted(mine) == sorted(keras_one)
        for key in mine:
            compared = 1 if mine is a[0] and key.startswith("val_") else None  # see above
            np.testing.assert_allclose(mine[key][:compared], keras_one[key][:compared], rtol=1e-4, atol=1e-6,
                                       err_msg=key)
    assert len(a[0]["val_loss"]) == 2  # validation_freq=2 over 4 epochs
    np.testing.assert_allclose(a[2], b[2], rtol=1e-4)
    assert a[3].shape == (8, 1)
    np.testing.assert_allclose(a[3], b[3], rtol=1e-4, atol=1e-6)
    # 7 batches: 3 + 3 + 1, then training stops, as Keras' warning says ("interrupting training");
    # Keras itself goes on, over its two kept batches again, for the epochs left
    assert len(a[4]["loss"]) == 3 and len(b[4]["loss"]) == 5
    np.testing.assert_allclose(a[4]["loss"], b[4]["loss"][:3], rtol=1e-4)


def test_generators_are_drawn_on_in_order_and_read_once():
    drawn = []

    def numbered(start, n):
        for i in range(start, start + n):
            drawn.append(i)
            yield np.full((2, 5, 2), i, "float32"), np.full((2, 1), i, "float32")

    model = gk.Sequential([gl.GRU(3, input_shape=(5, 2)), gl.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(numbered(0, 100), steps_per_epoch=3, epochs=2, validation_data=numbered(1000, 100),
              validation_steps=2, verbose=0)
    # the first batch is read once to build the model, then served first (not read again)
    assert drawn == [0, 1, 2, 1000, 1001, 3, 4, 5, 1002, 1003]


def test_generator_inputs_are_checked_and_say_what_keras_wants():
    model = gk.Sequential([gl.GRU(3, input_shape=(5, 2)), gl.Dense(1)])
    model.compile("sgd", "mse")
    data = _batches(0, 6)
    with pytest.raises(ValueError, match="generator, which can be read once, and fit would validate 2 times"):
        model.fit(iter(data), epochs=2, validation_data=iter(data), verbose=0)
    with pytest.raises(ValueError, match=r"must yield \(x, y\) pairs .* got 1 items"):
        model.fit(iter([(b[0],) for b in data]), verbose=0)
    with pytest.raises(ValueError, match="y must be None when x is a generator"):
        model.fit(iter(data), data[0][1], verbose=0)
    with pytest.raises(ValueError, match="yielded no batch"):
        model.fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive int, got 0"):
        model.fit(iter(data), steps_per_epoch=0, verbose=0)
    with pytest.raises(TypeError, match="validation_freq must be an int"):
        model.fit(iter(data), validation_freq=1.5, verbose=0)
    with pytest.warns(RuntimeWarning, match="the training data ran out after 0 batches in epoch 2"):
        history = model.fit(iter(data), epochs=3, verbose=0)  # a finite generator: one epoch's worth
    assert len(history.history["loss"]) == 1
    # class_weight reaches a generator's batches as they are drawn (equal to the same arrays')
    x = np.concatenate([b[0] for b in data])
    y = (np.concatenate([b[1] for b in data]) > 0.5).astype("float32")
    weighted = {}
    for name, source in (("arrays", (x, y)), ("generator", (iter([(x[i:i + 4], y[i:i + 4])
                                                                  for i in range(0, 24, 4)]), None))):
        m = gk.Sequential([gl.GRU(3, input_shape=(5, 2)), gl.Dense(1, activation="sigmoid")])
        m.set_weights(model.get_weights()[:3] + [np.ones((3, 1), "float32"), np.zeros(1, "float32")])
        m.compile("sgd", "binary_crossentropy")
        weighted[name] = m.fit(*source, batch_size=4, shuffle=False, verbose=0,
                               class_weight={0: 1.0, 1: 4.0}).history["loss"][0]
    assert weighted["generator"] == pytest.approx(weighted["arrays"], rel=1e-6)


def test_keras_2_generator_methods_call_fit_evaluate_and_predict():
    """Keras 2's fit_generator / evaluate_generator / predict_generator (Chollet's GRU on the
    Jena weather series calls them with an endless generator) give what fit, evaluate and
    predict give on the same batches, with a deprecation warning."""
    data = _batches(5, 12)
    results = []
    for generator_methods in (False, True):
        gk.set_seed(0)
        model = gk.Sequential([gl.GRU(3, input_shape=(None, 2)), gl.Dense(1)])
        model.compile("rmsprop", "mae")
        if generator_methods:
            with pytest.warns(DeprecationWarning, match="fit_generator is deprecated"):
                history = model.fit_generator(_gen(data[:6]), steps_per_epoch=3, epochs=2, verbose=0,
                                              validation_data=_gen(data[6:]), validation_steps=2, workers=4)
            with pytest.warns(DeprecationWarning):
                loss = model.evaluate_generator(_gen(data[10:]), steps=2)
            with pytest.warns(DeprecationWarning):
                pred = model.predict_generator(_gen([b[0] for b in data[:2]]))
        else:
            history = model.fit(_gen(data[:6]), steps_per_epoch=3, epochs=2, verbose=0,
                                validation_data=_gen(data[6:]), validation_steps=2)
            loss = model.evaluate(_gen(data[10:]), steps=2)
            pred = model.predict(_gen([b[0] for b in data[:2]]))
        results.append((history.history, loss, pred))
    (h0, l0, p0), (h1, l1, p1) = results
    assert h0 == h1 and l0 == l1 and len(h0["val_loss"]) == 2
    np.testing.assert_array_equal(p0, p1)
    model = gk.Sequential([gl.Dense(1)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="evaluate_generator takes no callbacks"):
        model.evaluate_generator(_gen(data), callbacks=[gk.callbacks.TerminateOnNaN()])


@pytest.mark.parametrize("options, expected", [
    # Keras' own test (keras/src/layers/rnn/gru_test.py, test_correctness): its expected outputs
    ({}, [0.5217289, 0.6371659, 0.39384964]),
    ({"go_backwards": True}, [0.24406259, 0.611516, 0.3928808]),
    ({"unroll": True}, [0.5217289, 0.6371659, 0.39384964]),
    ({"reset_after": False}, [0.51447755, 0.6426879, 0.40208298]),
    ({"use_bias": False}, [0.49988455, 0.64701194, 0.4103359]),
    ({"implementation": 0}, [0.5217289, 0.6371659, 0.39384964]),  # test_legacy_implementation_argument
])
def test_keras_own_gru_correctness_test_passes_with_its_initializers(options, expected):
    sequence = np.arange(72).reshape((3, 6, 4)).astype("float32")
    inits = {"kernel_initializer": gk.initializers.Constant(0.01),
             "recurrent_initializer": gk.initializers.Constant(0.02),
             "bias_initializer": gk.initializers.Constant(0.03)}
    ours = gk.Sequential([gl.GRU(3, **inits, **options)]).predict(sequence)
    np.testing.assert_allclose(ours, np.repeat(np.array(expected, "float32")[:, None], 3, 1), atol=1e-5)
    # Keras' own initializer objects are callables init(shape, dtype) too
    theirs = {k: keras.initializers.Constant(v.value) for k, v in inits.items()}
    again = gk.Sequential([gl.GRU(3, **theirs, **options)]).predict(sequence)
    np.testing.assert_allclose(again, ours, atol=1e-7)


def test_regularizers_add_keras_penalties_to_the_loss_as_keras():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 9, size=(16, 5))
    y = rng.random((16, 1)).astype("float32")
    ours = gk.Sequential([
        gl.Embedding(9, 4, embeddings_regularizer="l2"),
        gl.Bidirectional(gl.GRU(3, return_sequences=True, kernel_regularizer="l2",
                                recurrent_regularizer=gk.regularizers.l1(0.02), bias_regularizer="L1")),
        gl.GRU(2, reset_after=False, bias_regularizer=gk.regularizers.l1_l2(0.01, 0.03)),
        gl.Dense(1, kernel_regularizer="l1", bias_regularizer=gk.regularizers.L2(0.5))])
    theirs = keras.Sequential([
        keras.Input((5,), dtype="int32"),
        keras.layers.Embedding(9, 4, embeddings_regularizer="l2"),
        keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True, kernel_regularizer="l2",
                                                    recurrent_regularizer=keras.regularizers.l1(0.02),
                                                    bias_regularizer="L1")),
        keras.layers.GRU(2, reset_after=False, bias_regularizer=keras.regularizers.L1L2(0.01, 0.03)),
        keras.layers.Dense(1, kernel_regularizer="l1", bias_regularizer=keras.regularizers.L2(0.5))])
    ours.build_from(torch.as_tensor(ids[:1]))
    weights = [rng.normal(0, 0.3, size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    np.testing.assert_allclose(sorted(float(t.detach()) for t in ours.losses),
                               sorted(float(t.detach()) for t in theirs.losses), rtol=1e-5)
    assert ours.count_params() == theirs.count_params()  # one bias without reset_after, as Keras
    assert copy.deepcopy(ours).count_params() == theirs.count_params()
    ours.compile("sgd", "mse")
    theirs.compile(keras.optimizers.SGD(), "mse")
    got = ours.fit(ids, y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(ids, y)).history
    want = theirs.fit(ids, y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                      validation_data=(ids, y)).history
    for key in ("loss", "val_loss"):  # both include the penalties
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, err_msg=key)
    assert ours.evaluate(ids, y) == pytest.approx(theirs.evaluate(ids, y, verbose=0), rel=1e-4)


def test_initializers_draw_keras_distributions_and_regularizers_are_saved(tmp_path):
    gk.set_seed(0)
    layer = gl.GRU(8, kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                   bias_initializer="zeros")
    model = gk.Sequential([gl.Input((4, 5)), gl.Bidirectional(layer)])
    for direction in ("forward_layer/cell/vars", "backward_layer/cell/vars"):
        kernel, recurrent, bias = model.layers[-1].keras_variables()[direction]
        assert np.abs(kernel).max() <= np.sqrt(6 / (5 + 24)) and np.abs(kernel).max() > 0.5 * np.sqrt(6 / 29)
        np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(8), atol=1e-5)  # Keras' whole (H, 3H)
        assert not bias.any()
    first = model.layers[-1].keras_variables()
    assert not np.array_equal(first["forward_layer/cell/vars"][1], first["backward_layer/cell/vars"][1])
    gk.set_seed(0)
    again = gk.Sequential([gl.Input((4, 5)), gl.Bidirectional(gl.GRU(
        8, kernel_initializer="GlorotUniform", recurrent_initializer="Orthogonal",
        bias_initializer="Zeros"))])
    np.testing.assert_array_equal(again.layers[-1].keras_variables()["forward_layer/cell/vars"][1],
                                  first["forward_layer/cell/vars"][1])  # gk.set_seed repeats the draws
    seeded = [gl.Dense(3, kernel_initializer=gk.initializers.HeNormal(seed=5)) for _ in range(2)]
    for d in seeded:
        d.build((2, 4))
    assert torch.equal(seeded[0].linear.weight, seeded[1].linear.weight)
    with pytest.raises(ValueError, match="kernel_initializer must be one of Keras' initializers"):
        gl.GRU(3, kernel_initializer="glorot")
    with pytest.raises(ValueError, match="recurrent_regularizer must be one of Keras' regularizers"):
        gl.GRU(3, recurrent_regularizer="l3")
    with pytest.raises(ValueError, match="gave an array of shape"):
        gk.Sequential([gl.Input((4, 5)),
                       gl.Dense(2, kernel_initializer=lambda shape, dtype=None: np.ones(3))])
    # the regularizers are part of the saved model; a custom one cannot be saved and says so
    model = gk.Sequential([gl.Input((4, 5)), gl.GRU(3, kernel_regularizer=gk.regularizers.L2(0.3)),
                           gl.Dense(1, bias_regularizer="l1")])
    model.compile("sgd", "mse")
    model.save(tmp_path / "m.grukit")
    loaded = gk.load(tmp_path / "m.grukit")
    np.testing.assert_allclose([float(t.detach()) for t in loaded.losses],
                               [float(t.detach()) for t in model.losses])
    custom = gk.Sequential([gl.Input((4, 5)), gl.GRU(3, kernel_regularizer=lambda w: w.abs().max())])
    custom.compile("sgd", "mse")
    with pytest.warns(UserWarning, match="is not saved with the model"):
        custom.save(tmp_path / "c.grukit")
    assert gk.load(tmp_path / "c.grukit").losses == []


def test_batch_size_none_is_keras_default_of_32():
    model = gk.Sequential([gl.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.random.default_rng(0).random((70, 3)), np.zeros((70, 1))
    model.fit(x, y, batch_size=None, verbose=0)
    assert model.steps_per_epoch == 3  # 32 + 32 + 6
    assert model.evaluate(x, y, batch_size=None) == pytest.approx(model.evaluate(x, y, batch_size=32))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        model.predict(x, batch_size=0)
    # validation_freq as a list of epochs (counted from 1), as Keras takes it
    history = model.fit(x, y, epochs=4, verbose=0, validation_data=(x, y), validation_freq=[1, 3])
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2


def test_frozen_layers_and_pretrained_embeddings_train_as_keras(tmp_path):
    """The pretrained-vectors tutorial: Embedding(weights=[matrix], trainable=False) keeps its
    vectors through fit while the rest learns, as Keras' does (the same losses epoch by epoch);
    layer.trainable / model.trainable set later freeze a built layer; summary and count_params
    split the weights as Keras' do; a .keras file keeps the flags both ways."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 6)).astype("float32")
    ids, y = rng.integers(0, 20, (16, 5)), rng.random((16, 1)).astype("float32")
    with pytest.warns(DeprecationWarning, match="input_length is deprecated"):
        embedding = gl.Embedding(20, 6, weights=[vectors], input_length=5, trainable=False)
    ours = gk.Sequential([gl.Input((5,), dtype="int64"), embedding, gl.GRU(4), gl.Dense(1)])
    theirs = keras.Sequential([keras.Input((5,), dtype="int32"),
                               keras.layers.Embedding(20, 6, weights=[vectors], trainable=False),
                               keras.layers.GRU(4), keras.layers.Dense(1)])
    theirs.set_weights(ours.get_weights())
    ours.compile("sgd", "mse")
    theirs.compile(keras.optimizers.SGD(), "mse")
    got = ours.fit(ids, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history["loss"]
    want = theirs.fit(ids, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    np.testing.assert_array_equal(ours.get_weights()[0], vectors)
    assert ours.count_params() == theirs.count_params() == 269
    text = ours.summary()
    assert "trainable params: 149" in text and "non-trainable params: 120" in text
    ours.save(tmp_path / "frozen.keras")
    flags = [la.trainable for la in keras.models.load_model(tmp_path / "frozen.keras").layers]
    assert flags == [False, True, True]
    assert [la.trainable for la in gk.load(str(tmp_path / "frozen.keras")).layers] == [True, False, True,
                                                                                     True]
    theirs.save(tmp_path / "keras_frozen.keras")
    assert [la.trainable for la in gk.load(str(tmp_path / "keras_frozen.keras")).layers][1] is False
    # freezing a built layer, and the whole model
    gru = ours.layers[2]
    gru.trainable = False
    before = [w.copy() for w in ours.get_weights()]
    ours.fit(ids, y, epochs=1, verbose=0)
    after = ours.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before[:4], after[:4], strict=True))  # embedding, GRU
    assert not np.array_equal(before[4], after[4])  # Dense still learns
    ours.trainable = False
    assert not ours.trainable and ours.summary().endswith("trainable params: 0\nnon-trainable params: 269")
    with pytest.raises(TypeError, match="trainable must be a bool"):
        gl.Dense(1, trainable="no")
    with pytest.raises(ValueError, match=r"weights: variables of shapes \[\(20, 5\)\] do not fit Embedding"):
        gl.Embedding(20, 6, weights=[vectors[:, :5]])


def test_keras_data_utilities_give_keras_results():
    """gk.utils.pad_sequences and to_categorical equal keras.utils' on the same inputs;
    timeseries_dataset_from_array gives Keras' windows (its docstring's example) in batches
    that fit trains on."""
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 9, size=n)) for n in (0, 1, 3, 6, 4)]
    for kwargs in ({}, {"maxlen": 4}, {"maxlen": 4, "padding": "post", "truncating": "post"},
                   {"value": -1, "truncating": "post"}, {"maxlen": 7, "dtype": "float32", "value": 0.5}):
        ours = gk.utils.pad_sequences(sequences, **kwargs)
        theirs = keras.utils.pad_sequences(sequences, **kwargs)
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    vectors = [rng.normal(size=(n, 3)) for n in (2, 5)]
    np.testing.assert_array_equal(gk.utils.pad_sequences(vectors, dtype="float64", padding="post"),
                                  keras.utils.pad_sequences(vectors, dtype="float64", padding="post"))
    for labels, kwargs in (([0, 2, 1, 2], {}), ([[1], [0], [3]], {}), ([[0, 1], [2, 2]], {"num_classes": 5})):
        ours, theirs = gk.utils.to_categorical(labels, **kwargs), keras.utils.to_categorical(labels, **kwargs)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="beyond num_classes=2"):
        gk.utils.to_categorical([0, 2], num_classes=2)
    with pytest.raises(ValueError, match="padding must be one of"):
        gk.utils.pad_sequences(sequences, padding="middle")
    # Keras' example: steps 0..98, 10 steps every 2nd, a window every 3 steps
    windows = gk.utils.timeseries_dataset_from_array(np.arange(99), None, sequence_length=10, sampling_rate=2,
                                                     sequence_stride=3, batch_size=None)
    assert [windows[0].tolist(), windows[1].tolist(), windows[len(windows) - 1].tolist()] == [
        list(range(0, 20, 2)), list(range(3, 23, 2)), list(range(78, 98, 2))]
    # the forecasting tutorial's use: x[t - 5 .. t - 1] predicts y[t], batches for fit
    series = np.sin(np.arange(300) / 8)[:, None].astype("float32")
    data = gk.utils.timeseries_dataset_from_array(series[:-5], series[5:, 0], sequence_length=5,
                                                  batch_size=32, shuffle=True, seed=1)
    x0, y0 = next(iter(data))
    assert tuple(x0.shape) == (32, 5, 1) and tuple(y0.shape) == (32,)
    first = [xb[:, 0, 0] for xb, _ in data]
    again = [xb[:, 0, 0] for xb, _ in data]
    assert not torch.equal(torch.cat(first), torch.cat(again))  # each pass newly shuffled
    in_order = gk.utils.timeseries_dataset_from_array(series[:-5], series[5:, 0], sequence_length=5,
                                                      batch_size=32)
    xb, yb = next(iter(in_order))  # window i: steps i .. i + 4; its target: step i + 5
    np.testing.assert_array_equal(xb.numpy(), np.stack([series[i:i + 5] for i in range(32)]))
    np.testing.assert_array_equal(yb.numpy(), series[5:37, 0])
    model = gk.Sequential([gl.GRU(8), gl.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(data, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3 and model.steps_per_epoch == len(data) == 10


def test_lambda_callback_calls_its_functions_as_keras():
    seen = []
    callback = gk.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(("begin", dict(logs))),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch", epoch, sorted(logs))),
        on_batch_end=lambda batch, logs: seen.append(("batch", batch)),  # Keras 2's name
        on_train_end=lambda logs: seen.append(("end",)))
    model = gk.Sequential([gl.Dense(1)])
    model.compile("sgd", "mse", metrics=["mae"])
    x, y = np.ones((6, 2)), np.zeros((6, 1))
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback], validation_data=(x, y))
    logged = ["loss", "mae", "val_loss", "val_mae"]
    assert seen == [("begin", {}), ("batch", 0), ("batch", 1), ("epoch", 0, logged),
                    ("batch", 0), ("batch", 1), ("epoch", 1, logged), ("end",)]
    with pytest.raises(TypeError, match="unexpected keyword argument 'on_epoch_ends'"):
        gk.callbacks.LambdaCallback(on_epoch_ends=print)
    with pytest.raises(TypeError, match="on_epoch_end must be a function"):
        gk.callbacks.LambdaCallback(on_epoch_end=3)


@pytest.mark.parametrize("steps", [23, 24])
@pytest.mark.parametrize("padding, strides, dilation", [("valid", 1, 1), ("valid", 3, 1), ("same", 2, 1),
                                                         ("same", 1, 2), ("causal", 1, 2), ("causal", 2, 1)])
def test_conv1d_pooling_flatten_layers_equal_keras(tmp_path, steps, padding, strides, dilation):
    """The convolution-then-GRU models and the dense baseline of the forecasting tutorials:
    Conv1D (every padding, strides, dilation), MaxPooling1D, GlobalMaxPooling1D, Activation,
    RepeatVector, Flatten, on the same weights as Keras' layers, through .keras files both ways."""
    pool = "valid" if padding == "causal" else "same"
    x = np.random.default_rng(steps).normal(size=(4, steps, 3)).astype("float32")

    def stack(lib):
        return [lib.Conv1D(5, 4, strides=strides, dilation_rate=dilation, padding=padding, activation="relu"),
                lib.MaxPooling1D(3, padding=pool), lib.GRU(4, return_sequences=True),
                lib.GlobalMaxPooling1D(), lib.Activation("tanh"), lib.RepeatVector(2), lib.Flatten(),
                lib.Dense(1)]

    theirs = keras.Sequential([keras.Input((steps, 3)), *stack(keras.layers)])
    ours = gk.Sequential([gl.Input((steps, 3)), *stack(gl)])
    ours.set_weights(theirs.get_weights())
    want = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(ours.predict(x), want, atol=1e-5)
    assert ours.count_params() == theirs.count_params()
    ours.save(tmp_path / "ours.keras")
    reread = keras.models.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(np.asarray(reread.predict(x, verbose=0)), want, atol=1e-5)
    theirs.save(tmp_path / "theirs.keras")
    np.testing.assert_allclose(gk.load(str(tmp_path / "theirs.keras")).predict(x), want, atol=1e-5)


def test_dense_baseline_and_conv_gru_train_and_save(tmp_path):
    """Chollet's dense baseline (Flatten over a declared window, then Dense) and a Conv1D before a
    GRU on an undeclared length: fit, save and load (grukit's file builds them again), a mask
    reaching a convolution is dropped with Keras' warning."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 12, 2)).astype("float32"), rng.normal(size=(32, 1)).astype("float32")
    dense = gk.Sequential([gl.Flatten(input_shape=(12, 2)), gl.Dense(8, activation="relu"), gl.Dense(1)])
    conv = gk.Sequential([gl.Input((None, 2)), gl.Conv1D(6, 5, activation="relu"), gl.MaxPooling1D(2),
                          gl.GRU(4), gl.Dense(1)])
    for model, name in ((dense, "dense.grukit"), (conv, "conv.grukit")):
        model.compile("adam", "mse")
        model.fit(x, y, epochs=2, verbose=0)
        model.save(str(tmp_path / name))
        np.testing.assert_array_equal(gk.load(str(tmp_path / name)).predict(x), model.predict(x))
    assert dense.layers[-2].linear.in_features == 24
    masked = gk.Sequential([gl.Masking(0.0), gl.Conv1D(2, 2), gl.GRU(2)])
    with pytest.warns(UserWarning, match="does not support masking and drops it"):
        masked.predict(x)
    with pytest.raises(ValueError, match="padding must be one of"):
        gl.Conv1D(2, 3, padding="full")


def test_an_iterable_dataset_trains_in_its_own_order():
    """A torch IterableDataset (no length, its own order): fit batches it without shuffling, as
    Keras takes a generator, with the epoch's steps unknown until it stops."""
    from torch.utils.data import IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            g = torch.Generator().manual_seed(0)
            for _ in range(40):
                x = torch.randn(5, 2, generator=g)
                yield x, x.sum().reshape(1)

    model = gk.Sequential([gl.GRU(4), gl.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(Stream(), epochs=2, batch_size=8, verbose=0, validation_data=Stream())
    assert len(history.history["val_loss"]) == 2 and model.steps_per_epoch is None
    assert model.predict(Stream()).shape == (40, 1)


@pytest.mark.parametrize("cells", [1, 2])
@pytest.mark.parametrize("return_sequences, go_backwards", [(False, False), (True, True), (True, False)])
def test_rnn_of_gru_cells_equals_keras(tmp_path, cells, return_sequences, go_backwards):
    """Keras' RNN(GRUCell) and stacked cells RNN([GRUCell, GRUCell]) under a mask, backwards
    too, with return_state and initial_state, on the same weights as Keras; saved and loaded."""
    rng = np.random.default_rng(cells)
    x = rng.normal(size=(4, 7, 3)).astype("float32")
    x[1, 5:], x[2, :2] = 0, 0  # padding at the end and at the start

    def cell_list(lib):
        l2 = (gk.regularizers if lib is gl else keras.regularizers).L2(0.3)  # saved with the model
        found = [lib.GRUCell(4, kernel_regularizer=l2)]
        found += [lib.GRUCell(5, reset_after=False)] if cells == 2 else []
        return found if cells == 2 else found[0]

    options = {"return_sequences": return_sequences, "go_backwards": go_backwards}
    theirs = keras.Sequential([keras.Input((7, 3)), keras.layers.Masking(0.0),
                               keras.layers.RNN(cell_list(keras.layers), **options)])
    ours = gk.Sequential([gl.Input((7, 3)), gl.Masking(0.0), gl.RNN(cell_list(gl), **options)])
    weights = [rng.normal(0, 0.5, size=w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    np.testing.assert_allclose(ours.predict(x), np.asarray(theirs.predict(x, verbose=0)), atol=1e-5)
    assert ours.count_params() == theirs.count_params()
    assert len(ours.losses) == len(theirs.losses) == 1  # the cell's regularizer, inside the RNN
    np.testing.assert_allclose(float(ours.losses[0].detach()), float(theirs.losses[0].detach()), rtol=1e-5)
    # the layer called with initial states, returning them (Keras: [output, state per cell])
    k_layer = keras.layers.RNN(cell_list(keras.layers), return_state=True, **options)
    k_layer.build((4, 7, 3))
    k_layer.set_weights(weights)
    o_layer = gl.RNN(cell_list(gl), return_state=True, **options)
    o_layer(torch.zeros(4, 7, 3), None)
    o_layer.set_weights(weights)
    h0 = [rng.normal(size=(4, u)).astype("float32") for u in (4, 5)[:cells]]
    want = k_layer(x, initial_state=h0 if cells == 2 else h0[0])
    with torch.no_grad():
        got, _ = o_layer(torch.as_tensor(x), None, initial_state=[torch.as_tensor(h) for h in h0])
    assert len(got) == len(want) == 1 + cells
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a.numpy(), np.asarray(b.detach()), atol=1e-5)
    ours.save(str(tmp_path / "rnn.grukit"))
    loaded = gk.load(str(tmp_path / "rnn.grukit"))
    np.testing.assert_array_equal(loaded.predict(x), ours.predict(x))
    assert float(loaded.losses[0].detach()) == float(ours.losses[0].detach())
    with pytest.raises(TypeError, match="cell must be a grukit.layers.GRUCell"):
        gl.RNN(gl.Dense(3))


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("Adam", {"learning_rate": 0.01, "weight_decay": 0.1, "clipnorm": 0.5}),
    ("AdamW", {"learning_rate": 0.01, "clipvalue": 0.05}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "global_clipnorm": 1.0}),
    ("Adagrad", {"learning_rate": 0.05}),
    ("Adamax", {"learning_rate": 0.02, "beta_1": 0.8}),
    ("Adadelta", {"learning_rate": 1.0, "rho": 0.9}),
])
def test_keras_optimizer_objects_train_as_keras(name, kwargs):
    """compile(optimizer=gk.optimizers.X(...)) with Keras' arguments (momentum, weight decay,
    clipnorm, clipvalue, global_clipnorm ...) trains as keras.optimizers.X(...) does on the same
    weights and batches; Keras' own optimizer object is taken too."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(16, 5, 2)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    theirs = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(4), keras.layers.Dense(1)])
    theirs.compile(getattr(keras.optimizers, name)(**kwargs), "mse")
    weights = [rng.normal(0, 0.5, size=w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    want = theirs.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history["loss"]
    for optimizer in (getattr(gk.optimizers, name)(**kwargs), getattr(keras.optimizers, name)(**kwargs)):
        ours = gk.Sequential([gl.Input((5, 2)), gl.GRU(4), gl.Dense(1)])
        ours.set_weights(weights)
        ours.compile(optimizer, "mse")
        got = ours.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history["loss"]
        np.testing.assert_allclose(got, want, rtol=2e-4)
        for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=2e-5)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # Keras: a fresh optimizer
def test_optimizer_objects_are_checked_and_saved(tmp_path):
    with pytest.raises(ValueError, match="give clipnorm or global_clipnorm, not both"):
        gk.optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        gk.optimizers.SGD(learning_rate=-1)
    with pytest.raises(TypeError, match="no schedule objects"):
        gk.optimizers.Adam(learning_rate="fast")
    model = gk.Sequential([gl.Input((5, 2)), gl.GRU(3), gl.Dense(1)])
    model.compile(gk.optimizers.RMSprop(0.003, momentum=0.2, clipnorm=2.0), "mse")
    model.save(str(tmp_path / "m.grukit"))
    again = gk.load(str(tmp_path / "m.grukit")).optimizer_spec
    assert isinstance(again, gk.optimizers.RMSprop) and again.get_config() == {
        "learning_rate": 0.003, "clipnorm": 2.0, "rho": 0.9, "momentum": 0.2, "epsilon": 1e-7,
        "centered": False}
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras").optimizer
    assert type(theirs).__name__ == "RMSprop" and theirs.clipnorm == 2.0 and theirs.momentum == 0.2
