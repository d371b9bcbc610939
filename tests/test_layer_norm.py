"""layer_norm=True: each step's input and recurrent projections normalised over their
3H values before their biases (Haste's LayerNormGRU); fused engine == reference,
gradients of the gains included, and the math's own invariances hold."""

import numpy as np
import pytest
import torch
from _helpers import seeded_outputs_and_grads as _grads

import grukit as gk
from grukit import engines, reference

ENGINES = ["reference"] + (["cpu"] if engines.compiled_cpu() is not None else [])
F64 = torch.float64


def _gru(engine, **kw):
    torch.manual_seed(0)
    m = gk.GRU(5, kw.pop("H", 7), layer_norm=True, engine=engine, dtype=F64, **kw)
    with torch.no_grad():  # gains away from 1, so that a mix-up of them shows
        for name, p in m.named_parameters():
            if name.startswith("layer_norm"):
                p.uniform_(0.5, 1.5)
    return m


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"bias": False},
        {"bidirectional": True},
        {"num_layers": 2, "dropout": 0.3},
        {"zoneout": 0.3},
        {"recurrent_dropout": 0.3},
        {"H": 64},
        {"H": 64, "num_layers": 2, "zoneout": 0.1, "recurrent_dropout": 0.2},
    ],
)
@pytest.mark.parametrize("B", [1, 3, 32])
def test_fused_equals_reference_in_float64(training, options, B):
    if "cpu" not in ENGINES:
        pytest.skip("the compiled CPU engine is not built")
    ref, fused = _gru("reference", **options), _gru("cpu", **options)
    ref.train(training)
    fused.train(training)
    T, D = 6, 2 if options.get("bidirectional") else 1
    x = torch.randn(T, B, 5, dtype=F64)
    h0 = torch.randn(ref.num_layers * D, B, ref.hidden_size, dtype=F64)
    kw = {"lengths": torch.randint(1, T + 1, (B,))}
    if D == 1:
        kw["resets"] = torch.rand(T, B) < 0.2
    want = _grads(ref, x, h0, 3, **kw)
    got = _grads(fused, x, h0, 3, **kw)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_fused_engine_passes_gradcheck():
    if "cpu" not in ENGINES:
        pytest.skip("the compiled CPU engine is not built")
    m = _gru("cpu", H=4)
    x = torch.randn(4, 2, 5, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=F64, requires_grad=True)
    params = list(m.parameters())

    names = [n for n, _ in m.named_parameters()]

    def run(x, h0, *ps):
        out = torch.func.functional_call(m, dict(zip(names, ps, strict=True)), (x, h0))
        return out[0], out[1]

    assert torch.autograd.gradcheck(run, (x, h0, *params))


def test_reference_cell_is_the_written_formula():
    torch.manual_seed(1)
    B, I, H = 3, 4, 5
    x, h = torch.randn(B, I, dtype=F64), torch.randn(B, H, dtype=F64)
    w_ih, w_hh = torch.randn(3 * H, I, dtype=F64), torch.randn(3 * H, H, dtype=F64)
    b_ih, b_hh, g_ih, g_hh = (torch.randn(3 * H, dtype=F64) for _ in range(4))

    def ln(a, g, b):
        mean = a.mean(1, keepdim=True)
        var = ((a - mean) ** 2).mean(1, keepdim=True)
        return (a - mean) / torch.sqrt(var + 1e-5) * g + b

    gi, gh = ln(x @ w_ih.T, g_ih, b_ih), ln(h @ w_hh.T, g_hh, b_hh)
    r = torch.sigmoid(gi[:, :H] + gh[:, :H])
    z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    want = (1 - z) * n + z * h
    got = reference.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, layer_norm=(g_ih, g_hh))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_output_barely_changes_when_a_weight_matrix_is_scaled(engine):
    """Normalisation removes the scale of each projection: W_ih -> 4 W_ih and
    W_hh -> 9 W_hh leave the function unchanged but for the 1e-5 in the variance
    (a plain GRU changes by far more)."""
    x, h0 = torch.randn(9, 4, 5, dtype=F64), torch.randn(1, 4, 7, dtype=F64)
    changes = {}
    for layer_norm in (True, False):
        m = _gru(engine) if layer_norm else gk.GRU(5, 7, engine=engine, dtype=F64)
        with torch.no_grad():
            before, _ = m(x, h0)
            m.weight_ih_l0.mul_(4.0)
            m.weight_hh_l0.mul_(9.0)
            after, _ = m(x, h0)
        changes[layer_norm] = (after - before).abs().max().item()
    assert changes[True] < 1e-3 and changes[False] > 0.1, changes


@pytest.mark.parametrize("engine", ENGINES)
def test_float32_matches_the_float64_reference(engine):
    ref = _gru("reference", num_layers=2)
    m = _gru(engine, num_layers=2).float()
    x = torch.randn(20, 8, 5, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(m(x.float())[0].double(), ref(x)[0], rtol=1e-4, atol=1e-5)


def test_inference_without_grad_equals_the_training_path():
    m = _gru("auto", num_layers=2).eval()
    x = torch.randn(7, 3, 5, dtype=F64)
    with torch.no_grad():
        y_nograd, h_nograd = m(x)
    y, h = m(x.requires_grad_())
    torch.testing.assert_close(y_nograd, y.detach(), rtol=0, atol=0)
    torch.testing.assert_close(h_nograd, h.detach(), rtol=0, atol=0)


def test_parameters_names_initialisation_and_torch_interop():
    torch.manual_seed(4)
    theirs = torch.nn.GRU(5, 6, num_layers=2, bidirectional=True)
    torch.manual_seed(4)
    ours = gk.GRU(5, 6, num_layers=2, bidirectional=True, layer_norm=True)
    state = ours.state_dict()
    for name, value in theirs.state_dict().items():  # the same seed draws torch's weights
        torch.testing.assert_close(state[name], value, rtol=0, atol=0)
    gains = {k for k in state if k.startswith("layer_norm")}
    assert gains == {f"layer_norm_{side}_l{l}{sfx}" for side in ("ih", "hh") for l in (0, 1)
                     for sfx in ("", "_reverse")}
    for k in gains:
        assert torch.equal(state[k], torch.ones(18))
    assert "layer_norm=True" in repr(ours)
    with pytest.raises(ValueError, match="to_torch needs layer_norm=False"):
        ours.to_torch()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="layer_norm=True needs reset_after=True"):
        gk.GRU(3, 4, layer_norm=True, reset_after=False)
    with pytest.raises(TypeError, match="layer_norm"):
        gk.GRU(3, 4, layer_norm="yes")
    with pytest.raises(ValueError, match="layer_norm=True needs reset_after=True"):
        gk.layers.GRU(4, layer_norm=True, reset_after=False)


def test_keras_layer_trains_and_saves(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12, 3)).astype("float32")
    y = x[:, :, :1].sum(1)  # the running sum: learnable
    model = gk.Sequential([gk.layers.GRU(16, layer_norm=True), gk.layers.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    gru = model.layers[0].gru
    assert not torch.equal(gru.layer_norm_hh_l0.detach(), torch.ones(48))  # the gains learn
    model.save(tmp_path / "m.grukit")
    again = gk.load(tmp_path / "m.grukit")
    assert again.layers[0].layer_norm is True
    np.testing.assert_allclose(again.predict(x), model.predict(x), rtol=0, atol=0)


def test_raw_op_refuses_bad_gains():
    if "cpu" not in ENGINES:
        pytest.skip("the compiled CPU engine is not built")
    ops = torch.ops.grukit
    x, h0 = torch.randn(4, 2, 3), torch.randn(2, 5)
    w_ih, w_hh = torch.randn(15, 3), torch.randn(15, 5)
    g = torch.ones(15)

    def call(ln_ih, ln_hh, reset_after=True):
        return ops.gru_layer_forward(x, h0, w_ih, w_hh, None, None, None, None, None, None, ln_ih, ln_hh,
                                     reset_after, False, True)

    assert len(call(g, g)) == 8
    for args, exc, match in [
        ((g, None), ValueError, "both layer-norm gains or neither"),
        ((g, g, False), ValueError, "reset_after=True only"),
        ((g, torch.ones(14)), ValueError, r"\(3H,\)"),
        ((g, g.double()), TypeError, "x's dtype"),
    ]:
        with pytest.raises(exc, match=match):
            call(*args)
