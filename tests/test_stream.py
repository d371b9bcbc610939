"""gk.stream: one step per call equals the whole-sequence call, for every model kind;
reset and state; the PyTorch steps (no compiled engine) equal the compiled ones; errors."""

import threading

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import engines, steps

compiled = pytest.mark.skipif(engines.compiled_cpu() is None, reason="the compiled CPU engine is not built")


def _steps(s, x):
    """Every step of x (T, B, I) through stream s, as one array (T, B, O)."""
    return np.stack([s.step(x[t]) for t in range(x.shape[0])])


def _seq(model, x, h0=None):
    with torch.no_grad():
        return model(torch.from_numpy(x), h0)


@pytest.mark.parametrize("options", [{}, {"reset_after": False}, {"layer_norm": True}, {"zoneout": 0.3},
                                     {"bias": False}, {"reset_after": False, "zoneout": 0.2}])
@pytest.mark.parametrize("B", [1, 3])
def test_gru_stream_equals_the_sequence(options, B):
    torch.manual_seed(0)
    gru = gk.GRU(5, 19, num_layers=2, **options).eval()  # 19: not a multiple of 8 or 16
    x = np.random.default_rng(1).standard_normal((11, B, 5)).astype(np.float32)
    s = gk.stream(gru, batch_size=B)
    want, h_n = _seq(gru, x)
    np.testing.assert_allclose(_steps(s, x), want.numpy(), rtol=0, atol=1e-6)
    torch.testing.assert_close(s.state, h_n, rtol=0, atol=1e-6)


def test_unbatched_steps_tensors_and_out():
    torch.manual_seed(0)
    gru = gk.GRU(4, 8).eval()
    x = torch.randn(6, 4)
    want = _seq(gru, x.numpy())[0]
    s = gk.stream(gru)
    got = torch.stack([s.step(x_t) for x_t in x])  # (I,) tensors in, (H,) tensors out
    assert got.shape == (6, 8) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    s.reset()
    out = np.empty(8, np.float32)
    for t in range(6):
        assert s.step(x[t].double().numpy(), out=out) is out  # float64 in: cast to float32
    np.testing.assert_allclose(out, want[-1].numpy(), rtol=0, atol=1e-6)


def test_mingru_and_quantized_gru_streams():
    torch.manual_seed(0)
    x = np.random.default_rng(2).standard_normal((9, 2, 6)).astype(np.float32)
    m = gk.MinGRU(6, 12, num_layers=2)
    np.testing.assert_allclose(_steps(gk.stream(m, 2), x), _seq(m, x)[0].numpy(), rtol=0, atol=1e-6)
    if engines.compiled_cpu() is None:
        return
    for B in (2, 9):  # 9: the input projection in float32, as the sequence engine does from 8 rows
        q = gk.quantize(gk.GRU(6, 24, num_layers=2))
        xb = np.random.default_rng(B).standard_normal((7, B, 6)).astype(np.float32)
        np.testing.assert_allclose(_steps(gk.stream(q, B), xb), _seq(q, xb)[0].numpy(), rtol=0, atol=1e-6)


def test_bfloat16_stream_computes_the_bfloat16_weights_in_float32():
    torch.manual_seed(0)
    gru = gk.GRU(6, 20, num_layers=2).eval()
    b16 = gk.quantize(gru, torch.bfloat16)
    exact = gk.GRU(6, 20, num_layers=2).eval()  # the bfloat16 weights, widened: what the stream computes
    exact.load_state_dict({k: v.float() for k, v in b16.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((8, 2, 6)).astype(np.float32)
    got = _steps(gk.stream(b16, 2), x)
    np.testing.assert_allclose(got, _seq(exact, x)[0].numpy(), rtol=0, atol=1e-6)


def _sequential(return_sequences, embedding=False):
    torch.manual_seed(0)
    model = gk.Sequential()
    if embedding:
        model.add(gk.layers.Embedding(30, 7))
    model.add(gk.layers.GRU(16, return_sequences=True, reset_after=False))
    model.add(gk.layers.Dropout(0.5))
    model.add(gk.layers.GRU(12, return_sequences=return_sequences))
    model.add(gk.layers.Dense(5, activation="softmax"))
    return model


@pytest.mark.parametrize("return_sequences", [True, False])
def test_sequential_stream_gives_the_model_s_output_at_each_step(return_sequences):
    model = _sequential(return_sequences)
    x = np.random.default_rng(4).standard_normal((3, 10, 4)).astype(np.float32)  # (B, T, F), Keras' way
    full = model.predict(x)
    s = gk.stream(model, batch_size=3)
    got = _steps(s, x.transpose(1, 0, 2))  # (T, B, 5)
    if return_sequences:
        np.testing.assert_allclose(got.transpose(1, 0, 2), full, rtol=0, atol=1e-6)
    else:  # the output after step t is the model's output on the sequence so far
        for t in (0, 4, 9):
            np.testing.assert_allclose(got[t], model.predict(x[:, : t + 1]), rtol=0, atol=1e-6)
    assert isinstance(s.state, list) and [h.shape for h in s.state] == [(3, 16), (3, 12)]


@pytest.mark.parametrize("activation", sorted(a for a in steps.ACTIVATION_CODES if a))
def test_every_dense_activation_streams(activation):
    torch.manual_seed(0)
    model = gk.Sequential([gk.layers.GRU(8, return_sequences=True),
                           gk.layers.Dense(3, activation=activation)])
    x = np.random.default_rng(5).standard_normal((2, 4, 3)).astype(np.float32) * 3
    full = model.predict(x)
    got = _steps(gk.stream(model, 2), x.transpose(1, 0, 2)).transpose(1, 0, 2)
    np.testing.assert_allclose(got, full, rtol=1e-6, atol=1e-6)


def test_embedding_first_takes_token_ids():
    model = _sequential(True, embedding=True)
    ids = np.random.default_rng(6).integers(0, 30, size=(2, 8))
    full = model.predict(ids)
    s = gk.stream(model, batch_size=2)
    assert s.takes_ids and s.input_size is None
    got = np.stack([s.step(ids[:, t]) for t in range(8)], axis=1)
    np.testing.assert_allclose(got, full, rtol=0, atol=1e-6)
    one = gk.stream(model)
    np.testing.assert_allclose(np.stack([one.step(int(i)) for i in ids[0]]), full[0], rtol=0, atol=1e-6)
    with pytest.raises((IndexError, ValueError), match="out of range|must lie"):
        s.step(np.array([0, 30]))
    with pytest.raises(TypeError, match="integer token ids"):
        s.step(np.array([0.5, 1.0]))


def test_reset_and_state_set_by_hand():
    torch.manual_seed(0)
    gru = gk.GRU(4, 10, num_layers=2).eval()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((12, 3, 4)).astype(np.float32)
    s = gk.stream(gru, batch_size=3)
    _steps(s, x[:5])
    s.reset()  # all rows: the rest is a fresh sequence
    np.testing.assert_allclose(_steps(s, x[5:]), _seq(gru, x[5:])[0].numpy(), rtol=0, atol=1e-6)
    s.reset(rows=[1])  # one row: the others carry on
    h = s.state
    assert torch.all(h[:, 1] == 0) and torch.all(h[:, 0] != 0)
    more = rng.standard_normal((4, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(_steps(s, more), _seq(gru, more, h)[0].numpy(), rtol=0, atol=1e-6)
    s.reset(rows=np.array([True, False, False]))
    assert torch.all(s.state[:, 0] == 0)
    h0 = torch.randn(2, 3, 10)
    s.state = h0  # set by hand: the steps start from it
    torch.testing.assert_close(s.state, h0)
    np.testing.assert_allclose(_steps(s, more), _seq(gru, more, h0)[0].numpy(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size, H"):
        s.state = torch.zeros(2, 2, 10)
    with pytest.raises(ValueError, match=r"rows must be in \[0, 3\)"):
        s.reset(rows=[3])


def test_run_equals_the_steps_and_carries_the_state():
    torch.manual_seed(0)
    gru = gk.GRU(4, 9).eval()
    x = np.random.default_rng(8).standard_normal((10, 2, 4)).astype(np.float32)
    a, b = gk.stream(gru, 2), gk.stream(gru, 2)
    first = a.run(x[:6])
    np.testing.assert_array_equal(np.concatenate([first, a.run(x[6:])]), _steps(b, x))


@compiled
def test_the_pytorch_steps_equal_the_compiled_ones(monkeypatch):
    model = _sequential(True)
    x = np.random.default_rng(9).standard_normal((6, 2, 4)).astype(np.float32)
    model.predict(x.transpose(1, 0, 2))  # builds it
    fast = gk.stream(model, 2)
    monkeypatch.setattr(engines, "compiled_cpu", lambda: None)
    slow = gk.stream(model, 2)
    assert fast.compiled and not slow.compiled
    np.testing.assert_allclose(_steps(slow, x), _steps(fast, x), rtol=0, atol=1e-6)


def test_streams_in_eight_threads_equal_the_serial_outputs():
    torch.manual_seed(0)
    gru = gk.GRU(8, 32, num_layers=2).eval()
    xs = [np.random.default_rng(i).standard_normal((20, 1, 8)).astype(np.float32) for i in range(8)]
    serial = [_steps(gk.stream(gru), x) for x in xs]
    results: dict = {}

    def work(i):
        results[i] = _steps(gk.stream(gru), xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        np.testing.assert_array_equal(results[i], serial[i])


def test_what_cannot_stream_is_refused_clearly():
    with pytest.raises(ValueError, match="bidirectional"):
        gk.stream(gk.GRU(3, 4, bidirectional=True))
    with pytest.raises(TypeError, match="float64"):
        gk.stream(gk.GRU(3, 4).double())
    with pytest.raises(TypeError, match="model must be"):
        gk.stream(torch.nn.GRU(3, 4))
    with pytest.raises(ValueError, match="batch_size"):
        gk.stream(gk.GRU(3, 4), batch_size=0)
    pooled = gk.Sequential([gk.layers.GRU(4, return_sequences=True), gk.layers.GlobalAveragePooling1D(),
                            gk.layers.Dense(2)])
    pooled.predict(np.zeros((1, 3, 2), np.float32))
    with pytest.raises(ValueError, match="not a per-step layer"):
        gk.stream(pooled)
    back = gk.Sequential([gk.layers.GRU(4, go_backwards=True)])
    back.predict(np.zeros((1, 3, 2), np.float32))
    with pytest.raises(ValueError, match="backwards"):
        gk.stream(back)
    s = gk.stream(gk.GRU(3, 4), batch_size=2)
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        s.step(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        s.step(np.zeros(3, np.float32))  # unbatched only when batch_size is 1
    with pytest.raises(TypeError, match="floating-point"):
        s.step(np.zeros((2, 3), np.int64).astype(np.complex64))
    with pytest.raises(TypeError, match="NumPy array or a torch tensor"):
        s.step("x")
    with pytest.raises(TypeError, match="out must be"):
        s.step(np.zeros((2, 3), np.float32), out=np.zeros((2, 4)))
