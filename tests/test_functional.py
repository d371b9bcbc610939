"""Keras' functional API: gk.Model(inputs, outputs) over layers called on layers.Input, held
against Keras itself on the same weights (a seq2seq graph with a shared Embedding, a
bidirectional encoder's states joined as the decoder's initial state, merge layers), against
Sequential, through save and load, and with the errors a user meets."""

import copy
import warnings

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import layers as gl

keras = pytest.importorskip("keras")  # a dev dependency: installed by `make test`


def _seq2seq(lib, decoder_steps=4):
    """Encoder and decoder share an Embedding; the encoder's two final states, joined, start
    the decoder; the decoder's steps get the encoder's pooled sequence added to each."""
    L = keras.layers if lib == "keras" else gl
    ids = "int32" if lib == "keras" else "int64"
    enc_in = L.Input((None,), dtype=ids, name="enc_in")
    dec_in = L.Input((decoder_steps,), dtype=ids, name="dec_in")
    emb = L.Embedding(20, 6, mask_zero=True, name="emb")
    encoder = L.Bidirectional(L.GRU(5, return_sequences=True, return_state=True), name="enc")
    seq, h_f, h_b = encoder(emb(enc_in))
    state = L.Concatenate(name="cat")([h_f, h_b])
    # Keras 3 drops the Embedding's mask when a layer is called with a second tensor
    # (initial_state), unlike Keras 2 and unlike its own eager call given mask=: grukit keeps
    # it, and the Keras model here is given it explicitly
    extra = {"mask": keras.ops.not_equal(dec_in, 0)} if lib == "keras" else {}
    dec = L.GRU(10, return_sequences=True, name="dec")(emb(dec_in), initial_state=state, **extra)
    pooled = L.Dense(10, name="proj")(L.GlobalAveragePooling1D(name="pool")(seq))
    mixed = L.Add(name="add")([dec, L.RepeatVector(decoder_steps, name="rep")(pooled)])
    out = L.Dense(20, activation="softmax", name="out")(mixed)
    return (keras.Model if lib == "keras" else gk.Model)([enc_in, dec_in], out)


def _same_weights(theirs, ours, seed=1):
    rng = np.random.default_rng(seed)
    for w in theirs.weights:
        w.assign(rng.normal(0, 0.5, size=w.shape).astype("float32"))
    for layer in theirs.layers:
        if layer.get_weights():
            ours.get_layer(layer.name).set_weights(layer.get_weights())


def _data(pad_decoder=True):
    rng = np.random.default_rng(4)
    xe = rng.integers(1, 20, (6, 7))
    xe[0, 4:] = 0  # padding at the end, at the start, and a row of one real step
    xe[1, :2] = 0
    xe[2, 1:] = 0
    xd = rng.integers(1, 20, (6, 4))
    if pad_decoder:
        xd[3, 2:] = 0
    return xe, xd, rng.integers(0, 20, (6, 4))


def test_a_seq2seq_graph_computes_what_keras_computes():
    keras.utils.set_random_seed(0)
    theirs, ours = _seq2seq("keras"), _seq2seq("grukit")
    _same_weights(theirs, ours)
    xe, xd, _ = _data()
    want = np.asarray(theirs.predict([xe, xd], verbose=0))
    got = ours.predict([xe, xd])
    assert got.shape == (6, 4, 20)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # called on tensors, as a torch module: the same
    with torch.no_grad():
        called = ours([torch.as_tensor(xe), torch.as_tensor(xd)])
    np.testing.assert_allclose(called.numpy(), want, rtol=0, atol=1e-5)
    assert [la.name for la in ours.layers] == ["enc_in", "dec_in", "emb", "enc", "cat", "dec", "pool", "proj",
                                               "rep", "add", "out"]
    assert len([la for la in ours.layers if la.name == "emb"]) == 1  # shared: one layer, one set of weights


def test_a_functional_model_trains_as_keras_epoch_by_epoch():
    keras.utils.set_random_seed(0)
    theirs, ours = _seq2seq("keras"), _seq2seq("grukit")
    _same_weights(theirs, ours, seed=2)
    xe, xd, y = _data(pad_decoder=False)  # Keras 3 masks no decoder step of this graph's loss
    theirs.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    ours.compile(optimizer="sgd", learning_rate=0.5, loss="sparse_categorical_crossentropy")
    h_k = theirs.fit([xe, xd], y, batch_size=3, epochs=3, shuffle=False, verbose=0,
                     validation_data=([xe[:2], xd[:2]], y[:2]))
    h_o = ours.fit([xe, xd], y, batch_size=3, epochs=3, shuffle=False, verbose=0,
                   validation_data=([xe[:2], xd[:2]], y[:2]))
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(h_o.history[key], h_k.history[key], rtol=1e-4)
    assert h_o.history["loss"][-1] < h_o.history["loss"][0]
    np.testing.assert_allclose(ours.predict([xe, xd]), np.asarray(theirs.predict([xe, xd], verbose=0)),
                               atol=1e-4)
    assert ours.evaluate([xe, xd], y) == pytest.approx(theirs.evaluate([xe, xd], y, verbose=0), rel=1e-4)


def test_a_functional_chain_is_the_sequential_model_of_its_layers():
    ids = np.random.default_rng(0).integers(0, 30, (40, 9))
    y = (ids.sum(1) > 135).astype("float32")

    def layers():
        gk.set_seed(3)
        return [gl.Embedding(30, 8, mask_zero=True), gl.GRU(6), gl.Dense(1, activation="sigmoid")]

    seq = gk.Sequential([gl.Input((9,), dtype="int64"), *layers()])
    first, second, third = layers()
    inputs = gl.Input((9,), dtype="int64")
    model = gk.Model(inputs, third(second(first(inputs))))
    model.set_weights(seq.get_weights())
    histories = []
    for m in (seq, model):
        gk.set_seed(5)
        m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        histories.append(m.fit(ids, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0).history)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5)
    np.testing.assert_allclose(model.predict(ids), seq.predict(ids), atol=1e-6)
    assert model.count_params() == seq.count_params() == 30 * 8 + 3 * 6 * (8 + 6 + 2) + 7


def test_save_and_load_keep_the_graph_weights_and_compile_settings(tmp_path):
    keras.utils.set_random_seed(0)
    model = _seq2seq("grukit")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    xe, xd, y = _data()
    model.fit([xe, xd], y, epochs=1, verbose=0)
    model.save(tmp_path / "m.grukit")
    back = gk.load(tmp_path / "m.grukit")
    assert isinstance(back, gk.Model) and not isinstance(back, gk.Sequential)
    np.testing.assert_array_equal(back.predict([xe, xd]), model.predict([xe, xd]))
    assert [la.name for la in back.layers] == [la.name for la in model.layers]
    assert back.compiled and back.loss_name == "sparse_categorical_crossentropy"
    back.fit([xe, xd], y, epochs=1, verbose=0)  # trains on
    model.save(tmp_path / "m.keras")  # a Keras file (test below), with grukit's own inside
    np.testing.assert_array_equal(gk.load(tmp_path / "m.keras").predict([xe, xd]), model.predict([xe, xd]))


def test_shapes_summary_and_the_free_time_axis():
    inputs = gl.Input((None, 3))
    seq, state = gl.GRU(4, return_sequences=True, return_state=True)(inputs)
    assert seq.shape == (None, None, 4) and state.shape == (None, 4) and seq.dtype == "float32"
    halved = gl.Conv1D(2, 3, strides=2)(seq)
    assert halved.shape == (None, None, 2)
    fixed = gl.RepeatVector(5)(state)
    assert fixed.shape == (None, 5, 4)
    joined = gl.concatenate([fixed, gl.Dense(4)(fixed)], axis=1)
    assert joined.shape == (None, 10, 4)
    model = gk.Model(inputs, [gl.GlobalMaxPooling1D()(joined), state])
    text = model.summary()
    assert "gru (GRU)" in text and "(None, None, 4), (None, 4)" in text
    assert "concatenate (Concatenate)" in text and "repeat_vector, dense" in text
    assert f"total params: {model.count_params():,}" in text
    outs = model.predict(np.random.default_rng(0).random((3, 11, 3)))
    assert isinstance(outs, list) and [o.shape for o in outs] == [(3, 4), (3, 4)]
    assert len(model.inputs) == 1 and model.inputs[0].shape == (None, None, 3)
    assert [t.shape for t in model.outputs] == [(None, 4), (None, 4)]
    # a Dense after a Flatten needs the length: refused while the graph is made, not at fit
    with pytest.raises(ValueError, match="needs it declared in layers.Input"):
        gl.Dense(1)(gl.Flatten()(gl.Input((None, 3))))
    declared = gl.Input((8, 3))
    assert gl.Dense(1)(gl.Flatten()(declared)).shape == (None, 1)


def test_masks_travel_the_graph_and_merge_as_keras():
    ids = gl.Input((5,), dtype="int64")
    a = gl.Embedding(10, 3, mask_zero=True)(ids)
    features = gl.Input((5, 2))
    b = gl.Dense(3)(features)  # no mask
    x = np.array([[1, 2, 0, 0, 0], [3, 0, 4, 5, 6]])
    for merge in (gl.Add(), gl.Subtract(), gl.Multiply(), gl.Average(), gl.Maximum(), gl.Minimum()):
        ta, tb = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
        mask = torch.as_tensor(x != 0)
        out, out_mask = merge([ta, tb], [mask, None])
        want = {"Add": ta + tb, "Subtract": ta - tb, "Multiply": ta * tb, "Average": (ta + tb) / 2,
                "Maximum": torch.maximum(ta, tb), "Minimum": torch.minimum(ta, tb)}[type(merge).__name__]
        torch.testing.assert_close(out, want, rtol=0, atol=0)
        assert torch.equal(out_mask, mask)
    # joined in time, the masks are joined too (an input without one: all real)
    out, out_mask = gl.Concatenate(axis=1)([torch.zeros(2, 5, 3), torch.zeros(2, 2, 3)],
                                          [torch.as_tensor(x != 0), None])
    assert out.shape == (2, 7, 3)
    assert out_mask.tolist() == [[True, True, False, False, False, True, True],
                                 [True, False, True, True, True, True, True]]
    # a masked sequence through a merge to a GRU: the GRU skips the masked steps
    merged = gl.add([a, b])
    model = gk.Model([ids, features], gl.GRU(4)(merged))
    rng = np.random.default_rng(0)
    feats = rng.random((2, 5, 2)).astype("float32")
    full = model.predict([x, feats])
    x2, feats2 = x.copy(), feats.copy()
    x2[0, 2:] = 0
    feats2[0, 2:] = 7.0  # what the masked steps hold does not matter
    np.testing.assert_allclose(model.predict([x2, feats2]), full, atol=1e-6)


def test_several_inputs_take_lists_datasets_and_generators():
    a, b = gl.Input((6, 2)), gl.Input((3,))
    out = gl.Dense(1)(gl.concatenate([gl.GRU(4)(a), gl.Dense(4)(b)]))
    model = gk.Model([a, b], out)
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    xa, xb, y = rng.random((20, 6, 2)), rng.random((20, 3)), rng.random((20, 1))
    gk.set_seed(0)
    arrays = model.fit([xa, xb], y, epochs=2, batch_size=5, shuffle=False, verbose=0).history["loss"]

    def batches():
        for i in range(0, 20, 5):
            yield (xa[i:i + 5], xb[i:i + 5]), y[i:i + 5]

    model2 = gk.Model([a, b], out)  # a second model of the same layers: the same weights
    assert model2.layers[2] is model.layers[2]
    model2.compile("adam", "mse")
    assert model2.evaluate(batches()) == pytest.approx(model.evaluate([xa, xb], y), rel=1e-6)
    ds = torch.utils.data.TensorDataset(torch.as_tensor(xa).float(), torch.as_tensor(xb).float(),
                                        torch.as_tensor(y).float())
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    assert model.evaluate((((p, q), t) for p, q, t in loader)) == pytest.approx(
        model.evaluate([xa, xb], y), rel=1e-6)
    model.fit(batches(), epochs=1, verbose=0, validation_data=([xa, xb], y))
    assert len(arrays) == 2 and model.predict([xa, xb]).shape == (20, 1)
    with pytest.raises(ValueError, match="x must be a list of 2 arrays, one per input"):
        model.fit(xa, y, verbose=0)
    with pytest.raises(ValueError, match=r"x's arrays must have the same number of samples, got \[20, 19\]"):
        model.fit([xa, xb[:19]], y, verbose=0)
    with pytest.raises(ValueError, match="x must be a list of 2 inputs"):
        model([torch.zeros(1, 6, 2)])
    with pytest.raises(ValueError, match="tbptt cuts one input"):
        model.fit([xa, xb], y, tbptt=2, verbose=0)


def test_what_a_functional_model_refuses_names_the_fix():
    with pytest.raises(TypeError, match="gk.Model takes inputs and outputs"):
        gk.Model()
    inputs, other = gl.Input((None, 2)), gl.Input((None, 2))
    out = gl.Dense(1)(gl.GRU(3)(gl.add([inputs, other])))
    with pytest.raises(ValueError, match="outputs depend on a layers.Input that is not in inputs"):
        gk.Model(inputs, out)
    with pytest.raises(TypeError, match="inputs must be layers.Input objects"):
        gk.Model(np.zeros(3), out)
    with pytest.raises(TypeError, match="outputs must be layer outputs"):
        gk.Model([inputs, other], np.zeros(3))
    two = gk.Model([inputs, other], [out, out])
    two.compile("adam", "mse")
    with pytest.raises(ValueError, match="trains and scores a model of one output; this one has 2"):
        two.fit([np.zeros((2, 3, 2))] * 2, np.zeros((2, 1)), verbose=0)
    with pytest.raises(TypeError, match="takes no mask="):
        gl.GRU(3)(inputs, mask=np.ones((1, 2)))
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'training'"):
        gl.GRU(3)(inputs, training=True)
    with pytest.raises(TypeError, match="layers.Input is where a functional model starts"):
        gl.Input((2,))(inputs)
    with pytest.raises(TypeError, match="a KerasTensor has no value"):
        bool(gl.GRU(3)(inputs))
    with pytest.raises(ValueError, match="Subtract takes 2 tensors, got 3"):
        gl.subtract([inputs, inputs, inputs])
    with pytest.raises(ValueError, match="Concatenate.* needs inputs that agree on every other axis"):
        gl.concatenate([gl.Input((4, 2)), gl.Input((5, 2))])
    with pytest.raises(TypeError, match="Add takes a list of tensors"):
        gk.Sequential([gl.Input((3, 2)), gl.Add()])
    with pytest.raises(ValueError, match="axis must be a nonzero int"):
        gl.Concatenate(axis=0)
    with pytest.raises(AttributeError):  # a Sequential has no graph of Inputs
        _ = gk.Sequential([gl.Dense(1)]).inputs


def test_bfloat16_and_int8_serving_take_a_functional_model(tmp_path):
    inputs = gl.Input((None, 4))
    model = gk.Model(inputs, gl.Dense(2)(gl.GRU(8)(inputs)))
    x = np.random.default_rng(0).random((3, 7, 4)).astype("float32")
    want = model.predict(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype, tol in ((torch.bfloat16, 0.05), (torch.qint8, 0.05)):
            got = gk.quantize(model, dtype).predict(x)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, atol=tol)
    copied = copy.deepcopy(model)  # as gk.quantize copies: the copy's graph runs and saves its own layers
    copied.save(tmp_path / "copy.grukit")
    np.testing.assert_array_equal(gk.load(tmp_path / "copy.grukit").predict(x), want)
    assert all(a is not b for a, b in zip(copied.layers, model.layers, strict=True))


def test_a_layers_output_makes_a_feature_model_and_gk_input_is_layers_input():
    assert gk.Input is gl.Input
    inputs = gk.Input((None, 3))
    gru = gl.GRU(4, return_sequences=True, name="features")
    model = gk.Model(inputs, gl.Dense(1)(gl.GlobalAveragePooling1D()(gru(inputs))), name="regressor")
    features = gk.Model(model.input, model.get_layer("features").output)
    x = np.random.default_rng(0).random((2, 5, 3)).astype("float32")
    with torch.no_grad():
        want, _ = model.get_layer("features")(torch.as_tensor(x), None)
    np.testing.assert_allclose(features.predict(x), want.numpy(), atol=1e-6)
    assert gru.input.shape == (None, None, 3) and gru.input.node.layer is inputs
    assert model.output.shape == (None, 1) and model.name == "regressor"
    assert not hasattr(gl.GRU(2), "output")  # never called in a graph
    gru(gk.Input((None, 3)))
    with pytest.raises(ValueError, match="called on symbolic tensors 2 times"):
        _ = gru.output
    with pytest.raises(TypeError, match="a model is not called on a functional graph's tensors"):
        model(gk.Input((None, 3)))


def test_an_input_the_outputs_do_not_read_is_taken_and_saved(tmp_path):
    used, unused = gk.Input((None, 2)), gk.Input((3,))
    model = gk.Model([used, unused], gl.Dense(1)(gl.GRU(3)(used)))
    x = [np.ones((2, 4, 2), "float32"), np.zeros((2, 3), "float32")]
    model.save(tmp_path / "m.grukit")
    back = gk.load(tmp_path / "m.grukit")
    assert back.input_count() == 2
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_a_keras_functional_model_file_loads_with_its_graph_weights_and_masks(tmp_path):
    keras.utils.set_random_seed(0)
    theirs = _seq2seq("keras")
    _same_weights(theirs, _seq2seq("grukit"), seed=3)
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.save(tmp_path / "s2s.keras")
    ours = gk.load(tmp_path / "s2s.keras")
    assert type(ours) is gk.Model and ours.compiled and ours.loss_name == "sparse_categorical_crossentropy"
    xe, xd, y = _data()
    np.testing.assert_allclose(ours.predict([xe, xd]), np.asarray(theirs.predict([xe, xd], verbose=0)),
                               rtol=0, atol=1e-5)
    assert [la.name for la in ours.layers][:3] == ["enc_in", "dec_in", "emb"]

    # Keras' own way, no explicit mask: Keras 3 runs the decoder (called with initial_state)
    # without its mask, and the file says so; two GRUs of one size in two branches take their
    # own weights (the weights file names them by kind, in the config's order)
    enc_in, dec_in = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    emb = keras.layers.Embedding(20, 6, mask_zero=True)
    _, h = keras.layers.GRU(5, return_state=True)(emb(enc_in))
    started = keras.layers.GRU(5, return_sequences=True)(emb(dec_in), initial_state=h)
    plain = keras.layers.GRU(5, return_sequences=True)(emb(dec_in))
    k2 = keras.Model([enc_in, dec_in], keras.layers.Dense(3)(keras.layers.concatenate([started, plain])))
    rng = np.random.default_rng(4)
    for w in k2.weights:
        w.assign(rng.normal(0, 0.5, size=w.shape).astype("float32"))
    k2.save(tmp_path / "plain.keras")
    o2 = gk.interop.load_keras(tmp_path / "plain.keras")
    np.testing.assert_allclose(o2.predict([xe, xd]), np.asarray(k2.predict([xe, xd], verbose=0)),
                               rtol=0, atol=1e-5)
    dec_nodes = [n for n in o2.graph.nodes if isinstance(n.layer, gl.GRU) and n.initial_state is not None]
    assert [n.masked for n in dec_nodes] == [False]
    o2.save(tmp_path / "plain.grukit")  # kept through grukit's own file
    np.testing.assert_array_equal(gk.load(tmp_path / "plain.grukit").predict([xe, xd]), o2.predict([xe, xd]))


def test_keras_functional_files_grukit_cannot_hold_are_refused_by_name(tmp_path):
    inputs = keras.Input((None, 3))
    shifted = keras.ops.add(keras.layers.GRU(4, return_sequences=True)(inputs), 1.0)
    keras.Model(inputs, keras.layers.Dense(1)(shifted)).save(tmp_path / "op.keras")
    with pytest.raises(ValueError, match="computes 'Add' between its layers"):
        gk.load(tmp_path / "op.keras")
    keras.Model(inputs, keras.layers.LSTM(2)(inputs)).save(tmp_path / "lstm.keras")
    with pytest.raises(ValueError, match="Keras layer 'LSTM' has no grukit counterpart"):
        gk.load(tmp_path / "lstm.keras")


def test_a_functional_model_saved_as_keras_loads_in_keras(tmp_path):
    gk.set_seed(0)
    ours = _seq2seq("grukit")
    ours.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    xe, xd, _ = _data()  # a padded decoder: Keras gets its mask written out (NotEqual, as Keras writes one)
    ours.save(tmp_path / "s2s.keras")
    theirs = keras.models.load_model(tmp_path / "s2s.keras")
    np.testing.assert_allclose(np.asarray(theirs.predict([xe, xd], verbose=0)), ours.predict([xe, xd]),
                               rtol=0, atol=1e-5)
    assert type(theirs.optimizer).__name__ == "Adam"
    # two GRUs of one size in two branches, and a Dense shared by both: each weight where Keras
    # looks for it (its weights file numbers layers in its own order of the graph)
    a, b = gk.Input((None, 3)), gk.Input((None, 3))
    g1, g2, shared = gl.GRU(4), gl.GRU(4), gl.Dense(4)
    out = gl.Dense(1)(gl.concatenate([shared(g2(b)), shared(g1(a)), gl.add([g1(b), g2(a)])]))
    model = gk.Model([a, b], out)
    model.save(tmp_path / "branches.keras")
    theirs = keras.models.load_model(tmp_path / "branches.keras")
    rng = np.random.default_rng(0)
    xa, xb = rng.random((5, 6, 3)).astype("float32"), rng.random((5, 6, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(theirs.predict([xa, xb], verbose=0)), model.predict([xa, xb]),
                               rtol=0, atol=1e-5)
    # weights alone, both ways
    for w in theirs.weights:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    theirs.save_weights(tmp_path / "k.weights.h5")
    model.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(model.predict([xa, xb]), np.asarray(theirs.predict([xa, xb], verbose=0)),
                               rtol=0, atol=1e-5)
    # a masked decoder whose mask Keras 3 cannot be given as it writes one: grukit's own file
    feats, state_in = gk.Input((None, 2)), gk.Input((4,))
    masked = gl.GRU(4, return_sequences=True)(gl.Masking()(feats), initial_state=state_in)
    with pytest.warns(UserWarning, match="Keras 3 would run it without the mask"):
        gk.Model([feats, state_in], masked).save(tmp_path / "masked.keras")
    assert isinstance(gk.load(tmp_path / "masked.keras"), gk.Model)


def _attention_seq2seq(lib, kind, **options):
    """A decoder reading its encoder's steps through attention; the two joined, per step."""
    L = keras.layers if lib == "keras" else gl
    ids = "int32" if lib == "keras" else "int64"
    enc_in, dec_in = L.Input((None,), dtype=ids, name="enc_in"), L.Input((None,), dtype=ids, name="dec_in")
    emb = L.Embedding(20, 6, mask_zero=True, name="emb")
    enc_seq, state = L.GRU(8, return_sequences=True, return_state=True, name="enc")(emb(enc_in))
    extra = {"mask": keras.ops.not_equal(dec_in, 0)} if lib == "keras" else {}  # as in _seq2seq
    dec_seq = L.GRU(8, return_sequences=True, name="dec")(emb(dec_in), initial_state=state, **extra)
    context = getattr(L, kind)(name="att", **options)([dec_seq, enc_seq])
    out = L.Dense(20, activation="softmax", name="out")(L.Concatenate(name="cat")([dec_seq, context]))
    return (keras.Model if lib == "keras" else gk.Model)([enc_in, dec_in], out)


@pytest.mark.parametrize("kind,options", [("Attention", {}), ("Attention", {"use_scale": True}),
                                          ("Attention", {"score_mode": "concat", "use_scale": True}),
                                          ("AdditiveAttention", {}),
                                          ("AdditiveAttention", {"use_scale": False})])
def test_attention_layers_compute_and_train_as_keras(tmp_path, kind, options):
    keras.utils.set_random_seed(0)
    theirs, ours = _attention_seq2seq("keras", kind, **options), _attention_seq2seq("grukit", kind, **options)
    _same_weights(theirs, ours, seed=5)
    xe, xd, y = _data()  # padded encoder and decoder: the value's masked steps get no weight
    np.testing.assert_allclose(ours.predict([xe, xd]), np.asarray(theirs.predict([xe, xd], verbose=0)),
                               rtol=0, atol=1e-5)
    theirs.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    ours.compile(optimizer="sgd", learning_rate=0.5, loss="sparse_categorical_crossentropy")
    h_k = theirs.fit([xe, xd], y, batch_size=3, epochs=2, shuffle=False, verbose=0)
    h_o = ours.fit([xe, xd], y, batch_size=3, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_o.history["loss"], h_k.history["loss"], rtol=1e-5)
    ours.save(tmp_path / "att.keras")  # and through Keras' file, both ways
    np.testing.assert_allclose(np.asarray(keras.models.load_model(tmp_path / "att.keras").predict(
        [xe, xd], verbose=0)), ours.predict([xe, xd]), rtol=0, atol=1e-5)
    theirs.save(tmp_path / "theirs.keras")
    np.testing.assert_allclose(gk.load(tmp_path / "theirs.keras").predict([xe, xd]),
                               np.asarray(theirs.predict([xe, xd], verbose=0)), rtol=0, atol=1e-5)


def test_attention_masks_and_errors():
    query, value = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    value_mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    query_mask = torch.tensor([[True, False, True], [True, True, True]])
    out, mask = gl.Attention()([query, value], [query_mask, value_mask])
    weights = torch.softmax(query[0] @ value[0, :2].T, dim=-1)  # row 0 reads its two real values only
    torch.testing.assert_close(out[0, 0], weights[0] @ value[0, :2])
    assert torch.equal(out[0, 1], torch.zeros(4)) and torch.equal(mask, query_mask)
    with pytest.raises(TypeError, match=r"Attention takes a list \[query, value\] or \[query, value, key\]"):
        gl.Attention()(query, None)
    with pytest.raises(ValueError, match="needs query and key of one feature size"):
        gl.Attention()([query, torch.randn(2, 5, 3)], None)
    with pytest.raises(ValueError, match="score_mode must be one of"):
        gl.Attention(score_mode="general")


def test_inputs_by_name_and_the_shapes_an_input_expects():
    """Keras' own functional tests: inputs passed by name (calls, fit, predict) and a clear error
    for data of another shape than an Input declares."""
    a, b = gk.Input((3,), name="a"), gk.Input((None, 2), name="b")
    model = gk.Model([a, b], gl.Dense(1)(gl.concatenate([gl.Dense(4)(a), gl.GRU(4)(b)])))
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    xa, xb, y = rng.random((8, 3)), rng.random((8, 5, 2)), rng.random((8, 1))
    want = model.predict([xa, xb])
    np.testing.assert_array_equal(model.predict({"b": xb, "a": xa}), want)
    with torch.no_grad():
        np.testing.assert_allclose(model({"a": xa, "b": xb}).numpy(), want, atol=1e-6)
    model.fit({"a": xa, "b": xb}, y, epochs=1, verbose=0, validation_split=0.25)
    with pytest.warns(UserWarning, match=r"no input of the model is named, left out: \['c'\]"):
        model.predict({"a": xa, "b": xb, "c": xa})
    with pytest.raises(ValueError, match=r"needs a key for each of the model's inputs .* \['a', 'b'\]"):
        model.predict({"a": xa})
    with pytest.raises(ValueError, match=r"input a of the model expected shape=\(None, 3\), found"):
        model([np.zeros((2, 4)), np.zeros((2, 5, 2))])
    with pytest.raises(ValueError, match=r"input b of the model expected shape=\(None, None, 2\), found"):
        model([np.zeros((2, 3)), np.zeros((2, 5))])
    first, second = gk.Input((3,)), gk.Input((3,))
    with pytest.raises(ValueError, match=r"the inputs are named \[None, None\]"):
        gk.Model([first, second], gl.add([first, second]))({"a": xa, "b": xa})


def test_inference_models_of_a_trained_seq2seq_decode_step_by_step_as_the_training_model():
    """Keras' seq2seq guide: after training, an encoder model and a one-step decoder model are
    built from the trained layers (new Inputs for the token and the state); decoding step by
    step, fed the same tokens, gives what the training model gives at once."""
    gk.set_seed(0)
    enc_in, dec_in = gk.Input((None,), dtype="int64"), gk.Input((None,), dtype="int64")
    emb = gl.Embedding(12, 8, mask_zero=True)
    _, state = gl.GRU(16, return_state=True)(emb(enc_in))
    decoder_gru = gl.GRU(16, return_sequences=True, return_state=True)
    dense = gl.Dense(12, activation="softmax")
    seq, _ = decoder_gru(emb(dec_in), initial_state=state)
    training = gk.Model([enc_in, dec_in], dense(seq))
    training.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    src, dec_x = rng.integers(1, 12, (30, 6)), rng.integers(1, 12, (30, 5))
    src[:4, 4:] = 0
    training.fit([src, dec_x], rng.integers(0, 12, (30, 5)), epochs=2, verbose=0)
    encoder = gk.Model(enc_in, state)
    token, state_in = gk.Input((1,), dtype="int64"), gk.Input((16,))
    step_seq, step_state = decoder_gru(emb(token), initial_state=state_in)
    decoder = gk.Model([token, state_in], [dense(step_seq), step_state])
    h, steps = encoder.predict(src), []
    for t in range(5):
        probs, h = decoder.predict([dec_x[:, t:t + 1], h])
        steps.append(probs[:, 0])
    np.testing.assert_allclose(np.stack(steps, 1), training.predict([src, dec_x]), rtol=0, atol=1e-5)
    assert decoder.count_params() == 12 * 8 + 3 * 16 * (8 + 16 + 2) + 16 * 12 + 12  # the shared weights


def test_a_model_cut_from_a_graphs_middle_reads_fresh_inputs_as_keras():
    """Keras' functional slicing test: inputs taken from a graph's middle become fresh Inputs of
    their shapes, the layers between are the same layers (the same weights)."""
    inputs = gk.Input((None, 2), name="input")
    x1 = gl.Dense(3, name="dense1")(inputs)
    x2 = gl.GRU(4, return_sequences=True, name="gru")(x1)
    outputs = gl.Dense(5, name="dense3")(x2)
    full = gk.Model(inputs, outputs)
    tail = gk.Model(x2, outputs)
    assert len(tail.layers) == 2 and isinstance(tail.layers[0], gl.Input) and tail.layers[1].name == "dense3"
    middle = gk.Model(full.get_layer("gru").input, outputs)
    assert [type(la).__name__ for la in middle.layers] == ["Input", "GRU", "Dense"]
    assert middle.layers[1] is full.get_layer("gru")
    x = np.random.default_rng(0).random((3, 6, 2)).astype("float32")
    with torch.no_grad():
        hidden, _ = full.get_layer("dense1")(torch.as_tensor(x), None)
    np.testing.assert_allclose(middle.predict(hidden.numpy()), full.predict(x), rtol=0, atol=1e-6)
    assert gk.Model(x1, x2).inputs[0].shape == (None, None, 3)
