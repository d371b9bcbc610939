"""gk.MinGRU: the log-space parallel scan, the fused CPU scan and the step-by-step
recurrence compute the same function, gradients included."""

import pytest
import torch

import grukit as gk
from grukit import engines
from grukit.mingru import CHUNK, layer_sequential
from grukit.reference import mingru_g as g

needs_cpu_engine = pytest.mark.skipif(engines.compiled_cpu() is None, reason="the CPU engine is not built")


def _pair(layers=2, bias=True, I=5, H=7):
    torch.manual_seed(0)
    ref = gk.MinGRU(I, H, num_layers=layers, bias=bias, engine="reference").double()
    fused = gk.MinGRU(I, H, num_layers=layers, bias=bias).double()
    fused.load_state_dict(ref.state_dict())
    return ref, fused


def _run(m, x, h0, mode):
    x = x.clone().requires_grad_()
    h0 = h0.clone().requires_grad_()
    y, h_n = m(x, h0, mode=mode)
    torch.manual_seed(1)
    loss = (y * torch.randn_like(y)).sum() + (h_n * torch.randn_like(h_n)).sum()
    grads = torch.autograd.grad(loss, [x, h0, *m.parameters()])
    return [y, h_n, *grads]


@pytest.mark.parametrize("T", [1, 2, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
@pytest.mark.parametrize("layers,bias", [(1, True), (2, True), (2, False)])
def test_parallel_scan_equals_the_recurrence_in_float64(T, layers, bias):
    ref, fused = _pair(layers, bias)
    x = torch.randn(T, 3, 5, dtype=torch.float64) * 2
    h0 = torch.randn(layers, 3, 7, dtype=torch.float64)
    seq = _run(ref, x, h0, "sequential")
    engines_run = [(ref, "reference")] + ([(fused, "cpu")] if engines.compiled_cpu() is not None else [])
    for m, name in engines_run:
        got = _run(m, x, h0, "parallel")
        assert m.last_engine == name
        for a, b in zip(got, seq, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("engine", ["reference", pytest.param("cpu", marks=needs_cpu_engine)])
def test_gradcheck(engine):
    torch.manual_seed(0)
    m = gk.MinGRU(3, 4, num_layers=2, engine=engine).double()
    x = torch.randn(9, 2, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: m(x, h, mode="parallel"), (x, h0))


def test_candidate_activation_is_positive_and_continuous():
    v = torch.tensor([-50.0, -1.0, -1e-7, 0.0, 1e-7, 3.0])
    out = g(v)
    assert (out > 0).all()
    torch.testing.assert_close(out[2:5], torch.full((3,), 0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[-1], torch.tensor(3.5))


@needs_cpu_engine
def test_long_sequence_in_float32_stays_close_to_float64():
    """T = 4096: the chunked log-space scan and the fused scan keep float32 precision."""
    torch.manual_seed(0)
    m64 = gk.MinGRU(16, 32, engine="reference").double()
    x = torch.randn(4096, 2, 16, dtype=torch.float64)
    truth = layer_sequential(x, m64.weight_l0, m64.bias_l0, torch.zeros(2, 32, dtype=torch.float64))
    for engine in ("reference", "cpu"):
        m = gk.MinGRU(16, 32, engine=engine)
        m.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
        y, _ = m(x.float())
        torch.testing.assert_close(y.double(), truth, rtol=1e-4, atol=1e-5)


def test_stateful_step_by_step_use_matches_one_call():
    ref, fused = _pair()
    x = torch.randn(12, 3, 5, dtype=torch.float64)
    whole, h_whole = fused(x)
    h, outs = None, []
    for t in range(12):  # one step per call, carrying the state
        y, h = fused(x[t:t + 1], h)
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs), whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, h_whole, rtol=0, atol=1e-12)


def test_lengths_batch_first_and_unbatched():
    _, m = _pair(layers=1)
    m.batch_first = True
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    y, h = m(x, lengths=torch.tensor([6, 2, 0]))
    alone, h_alone = m(x[1:2, :2])
    torch.testing.assert_close(y[1, :2], alone[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(h[0, 1], h_alone[0, 0], rtol=0, atol=1e-12)
    assert (y[1, 2:] == 0).all() and (y[2] == 0).all() and (h[0, 2] == 0).all()
    m.batch_first = False
    y1, h1 = m(x[0])  # (T, I) unbatched
    assert y1.shape == (6, 7) and h1.shape == (1, 7)


def test_bad_input_is_named():
    m = gk.MinGRU(4, 8)
    with pytest.raises(ValueError, match="input must have 4 features"):
        m(torch.randn(3, 2, 5))
    with pytest.raises(TypeError, match="input must have dtype torch.float32"):
        m(torch.randn(3, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 2, 8\)"):
        m(torch.randn(3, 2, 4), torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="mode must be one of"):
        m(torch.randn(3, 2, 4), mode="fast")
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 3\]"):
        m(torch.randn(3, 2, 4), lengths=[1, 4])
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        gk.MinGRU(4, 0)


@needs_cpu_engine
def test_raw_ops_refuse_bad_shapes():
    with pytest.raises(RuntimeError, match=r"gates must be \(T, B, 2H\)"):
        torch.ops.grukit.mingru_scan_forward(torch.zeros(2, 3, 5), torch.zeros(3, 2))
    with pytest.raises(RuntimeError, match="h0 must be"):
        torch.ops.grukit.mingru_scan_forward(torch.zeros(2, 3, 8), torch.zeros(3, 5))
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.grukit.mingru_scan_forward(torch.zeros(2, 3, 8, dtype=torch.int32), torch.zeros(3, 4))


def test_keras_layer_with_masks_fits_and_round_trips(tmp_path):
    import numpy as np

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (128, 10))
    x[:, 7:] = 0  # padding
    y = (x[:, :7].mean(1) > 10).astype("float32")
    model = gk.Sequential([gk.layers.Embedding(20, 8, mask_zero=True), gk.layers.MinGRU(16),
                           gk.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"], learning_rate=0.01)
    history = model.fit(x, y, epochs=25, verbose=0)
    assert history.history["accuracy"][-1] > 0.8
    # the padding is skipped: the same as the unpadded sequences
    np.testing.assert_allclose(model.predict(x[:, :7]), model.predict(x), rtol=0, atol=1e-6)
    model.save(tmp_path / "m.grukit")
    again = gk.load(tmp_path / "m.grukit")
    np.testing.assert_allclose(again.predict(x), model.predict(x), rtol=0, atol=0)
