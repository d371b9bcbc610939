"""gk.export.onnx: onnxruntime computes what grukit computes (within 1e-5, float32), both
reset conventions, layers, directions, padded batches, at batch and time sizes of
the caller's choosing; what ONNX cannot express is refused by name."""

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import layers as L

onnx = pytest.importorskip("onnx", reason="pip install -e .[export]")
ort = pytest.importorskip("onnxruntime", reason="pip install -e .[export]")

SIZES = [(7, 3), (1, 1), (25, 6)]  # (T, B): none is special to the graph


def _session(model, **kw):
    proto = gk.export.onnx_model(model, **kw)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _close(got, want):
    np.testing.assert_allclose(got, want.detach().numpy() if torch.is_tensor(want) else want,
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (1, True), (3, True)])
@pytest.mark.parametrize("batch_first", [False, True])
def test_gru_matches_onnxruntime(reset_after, num_layers, bidirectional, batch_first):
    torch.manual_seed(0)
    m = gk.GRU(4, 6, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
               reset_after=reset_after).eval()
    sess = _session(m, h0=True, lengths=True)
    D = 2 if bidirectional else 1
    for T, B in SIZES:
        x = torch.randn(B, T, 4) if batch_first else torch.randn(T, B, 4)
        h0 = torch.randn(num_layers * D, B, 6)
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        with torch.no_grad():
            y, h_n = m(x, h0, lengths)
        got_y, got_h = sess.run(None, {"input": x.numpy(), "h0": h0.numpy(), "lengths": lengths.numpy()})
        _close(got_y, y)
        _close(got_h, h_n)


def test_gru_defaults_file_and_graph():
    torch.manual_seed(1)
    m = gk.GRU(3, 5, bias=False).eval()
    sess = _session(m)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["output", "h_n"]
    x = torch.randn(9, 2, 3)
    with torch.no_grad():
        y, h_n = m(x)
    got_y, got_h = sess.run(None, {"input": x.numpy()})
    _close(got_y, y)
    _close(got_h, h_n)
    proto = gk.export.onnx_model(gk.GRU(3, 5, reset_after=False))
    flags = [a.i for n in proto.graph.node if n.op_type == "GRU" for a in n.attribute
             if a.name == "linear_before_reset"]
    assert flags == [0]
    assert [a.i for n in gk.export.onnx_model(m).graph.node if n.op_type == "GRU" for a in n.attribute
            if a.name == "linear_before_reset"] == [1]


def test_file_is_written_and_loads(tmp_path):
    m = gk.GRU(3, 5, num_layers=2, batch_first=True).eval()
    path = gk.export.onnx(m, tmp_path / "sub" / "gru.onnx")
    assert path.exists() and not (tmp_path / "sub" / "gru.onnx.tmp").exists()
    onnx.checker.check_model(onnx.load(path), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 11, 3)
    with torch.no_grad():
        _close(sess.run(None, {"input": x.numpy()})[0], m(x)[0])


def _predict_both(model, x):
    model.eval()
    return _session(model).run(None, {"input": x})[0], model.predict(x)


def _masked_ids_agree(model):
    """grukit and ONNX Runtime agree on token ids pre-padded, post-padded and with holes."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 30, size=(4, 9))
    ids[0, :3] = 0  # pre-padded (Keras' pad_sequences default)
    ids[1, 6:] = 0  # post-padded
    ids[2, ::2] = 0  # holes
    model.build_from(torch.from_numpy(ids))
    for x in (ids, rng.integers(0, 30, size=(2, 17))):
        got, want = _predict_both(model, x)
        assert got.shape == want.shape
        _close(got, want)


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_sequential_with_embedding_masks_and_pre_padding(zero_output_for_mask):
    torch.manual_seed(2)
    _masked_ids_agree(gk.Sequential([
        L.Embedding(30, 5, mask_zero=True),
        L.GRU(6, return_sequences=True, reset_after=False, zero_output_for_mask=zero_output_for_mask),
        L.GRU(5, return_sequences=True, zero_output_for_mask=zero_output_for_mask),
        L.GRU(5, zero_output_for_mask=zero_output_for_mask),
        L.Dense(3, activation="softmax"),
    ]))


def test_sequential_with_embedding_masks_into_bidirectional():
    torch.manual_seed(2)
    _masked_ids_agree(gk.Sequential([
        L.Embedding(30, 5, mask_zero=True),
        L.GRU(6, return_sequences=True, reset_after=False),
        L.Bidirectional(L.GRU(4), merge_mode="ave"),
        L.Dense(3, activation="softmax"),
    ]))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul"])
def test_sequential_with_masking_go_backwards_and_sequences(merge_mode):
    torch.manual_seed(3)
    rng = np.random.default_rng(1)
    model = gk.Sequential([
        L.Input((None, 3)),
        L.Masking(0.0),
        L.Bidirectional(L.GRU(5, return_sequences=True, go_backwards=True), merge_mode=merge_mode),
        L.Dropout(0.5),
        L.GRU(4, return_sequences=True, go_backwards=True),
        L.Dense(2, activation="gelu"),
        L.Dense(1),
    ])
    x = rng.normal(size=(3, 8, 3)).astype("float32")
    x[0, :2] = 0
    x[1, 5:] = 0
    x[2, 3] = 0
    got, want = _predict_both(model, x)
    assert got.shape == want.shape == (3, 8, 1)
    _close(got, want)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "elu", "softplus", "selu", None])
def test_sequential_dense_activations(activation):
    torch.manual_seed(4)
    model = gk.Sequential([L.Input((None, 3)), L.GRU(5), L.Dense(4, activation=activation)])
    x = np.random.default_rng(2).normal(size=(5, 6, 3)).astype("float32")
    got, want = _predict_both(model, x)
    _close(got, want)


def test_what_onnx_cannot_express_is_refused():
    with pytest.raises(ValueError, match="zoneout"):
        gk.export.onnx_model(gk.GRU(3, 4, zoneout=0.1))
    with pytest.raises(ValueError, match="layer_norm"):
        gk.export.onnx_model(gk.GRU(3, 4, layer_norm=True))
    stateful = gk.Sequential([L.Input((None, 3)), L.GRU(4, stateful=True)])
    with pytest.raises(ValueError, match="stateful"):
        gk.export.onnx_model(stateful)
    with pytest.raises(ValueError, match="MinGRU"):
        gk.export.onnx_model(gk.Sequential([L.Input((None, 3)), L.MinGRU(4)]))
    with pytest.raises(ValueError, match="must be built"):
        gk.export.onnx_model(gk.Sequential([L.GRU(4)]))
    with pytest.raises(TypeError, match="grukit.GRU or grukit.Sequential"):
        gk.export.onnx_model(torch.nn.GRU(3, 4))
    with pytest.raises(ValueError, match=r"\.onnx"):
        gk.export.onnx(gk.GRU(3, 4), "model.bin")


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("num_layers,bidirectional,batch_first", [(1, False, True), (2, True, False)])
def test_torch_onnx_export_writes_onnxs_gru_as_for_torch_nn_gru(tmp_path, dynamo, num_layers, bidirectional,
                                                                 batch_first):
    """torch.onnx.export (its torch.export-based exporter and the TorchScript one) records gk.GRU as
    it records torch.nn.GRU, one ONNX GRU node; what that node cannot compute is refused with
    the way that can."""
    if dynamo:
        pytest.importorskip("onnxscript", reason="pip install -e .[export]")
    import warnings

    torch.manual_seed(0)
    g = gk.GRU(3, 4, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first).eval()
    x = torch.randn(2, 5, 3)
    path = str(tmp_path / "gru.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation warning
        torch.onnx.export(g, (x,), path, dynamo=dynamo)
    proto = onnx.load(path)
    assert [n.op_type for n in proto.graph.node].count("GRU") == num_layers
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    for a, b in zip(got, g(x), strict=True):
        _close(a, b)
    refused = {"reset_after": r"reset_after=False: gk.export.onnx\(model, path\) writes it",
               "layer_norm": r"layer_norm=True: ONNX's GRU operator has no such variant"}
    for option, match in refused.items():
        # the torch.export-based exporter wraps the error in its own, which quotes it
        with pytest.raises(Exception, match=match) as info:
            torch.onnx.export(gk.GRU(3, 4, **{option: option == "layer_norm"}), (x,),
                              str(tmp_path / "refused.onnx"), dynamo=dynamo)
        assert isinstance(info.value if not dynamo else info.value.__cause__, ValueError)


@pytest.mark.parametrize("dynamo", [False, True])
@pytest.mark.parametrize("reset_after", [True, False])
def test_torch_onnx_export_of_a_cell(tmp_path, dynamo, reset_after):
    """gk.GRUCell exports as torch.nn.GRUCell does (its cell function; plain ops for
    reset_after=False), and onnxruntime computes what it computes."""
    if dynamo:
        pytest.importorskip("onnxscript", reason="pip install -e .[export]")
    import warnings

    torch.manual_seed(0)
    cell = gk.GRUCell(3, 4, reset_after=reset_after)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    path = str(tmp_path / "cell.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cell, (x, h), path, dynamo=dynamo)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    _close(session.run(None, dict(zip(names, (x.numpy(), h.numpy()), strict=True)))[0], cell(x, h))
