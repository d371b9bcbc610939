"""zoneout=: each unit keeps its previous state with probability p at each step in
training, and that share of it at inference; fused engine == reference, gradients included."""

import pytest
import torch
from _helpers import seeded_outputs_and_grads as _grads

import grukit as gk
from grukit import engines

ENGINES = ["reference"] + (["cpu"] if engines.compiled_cpu() is not None else [])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B,H", [(3, 7), (2, 64), (32, 64)])  # small, split loop, batched
def test_fused_equals_reference_in_float64(training, reset_after, B, H):
    torch.manual_seed(0)
    ref = gk.GRU(5, H, num_layers=2, reset_after=reset_after, zoneout=0.3, engine="reference").double()
    T = 8
    x = torch.randn(T, B, 5, dtype=torch.float64)
    h0 = torch.randn(2, B, H, dtype=torch.float64)
    kw = dict(lengths=torch.randint(1, T + 1, (B,)), resets=torch.rand(T, B) < 0.2)
    ref.train(training)
    want = _grads(ref, x, h0, 7, **kw)
    for engine in ENGINES:
        m = gk.GRU(5, H, num_layers=2, reset_after=reset_after, zoneout=0.3, engine=engine).double()
        m.load_state_dict(ref.state_dict())
        m.train(training)
        got = _grads(m, x, h0, 7, **kw)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("engine", ENGINES)
def test_extremes_and_the_inference_mix(engine):
    torch.manual_seed(0)
    x, h0 = torch.randn(6, 2, 3), torch.randn(1, 2, 8)
    frozen = gk.GRU(3, 8, zoneout=1.0, engine=engine).train()
    y, h_n = frozen(x, h0)  # every unit keeps its state at every step
    torch.testing.assert_close(y, h0.expand(6, 2, 8))
    plain = gk.GRU(3, 8, engine=engine)
    plain.load_state_dict(frozen.state_dict())
    zero = gk.GRU(3, 8, zoneout=0.0, engine=engine)
    zero.load_state_dict(frozen.state_dict())
    torch.testing.assert_close(zero.train()(x, h0)[0], plain(x, h0)[0], rtol=0, atol=0)
    # inference, one step: h_1 = p h0 + (1 - p) h'_1
    half = gk.GRU(3, 8, zoneout=0.25, engine=engine).eval()
    half.load_state_dict(frozen.state_dict())
    step, _ = plain(x[:1], h0)
    torch.testing.assert_close(half(x[:1], h0)[0], 0.25 * h0 + 0.75 * step)


def test_training_draws_are_random_and_counted():
    torch.manual_seed(0)
    m = gk.GRU(4, 64, zoneout=0.5)
    x = torch.randn(50, 8, 4)
    y, _ = m(x)
    kept = (y[1:] == y[:-1]).float().mean().item()  # a unit that zoned out repeats its value
    assert 0.45 < kept < 0.55


def test_bad_zoneout_is_named():
    with pytest.raises(ValueError, match=r"zoneout must be in \[0, 1\], got 1.5"):
        gk.GRU(3, 8, zoneout=1.5)
    assert "zoneout=0.2" in repr(gk.GRU(3, 8, zoneout=0.2))


def test_keras_layer_takes_zoneout_and_saves_it(tmp_path):
    import numpy as np

    torch.manual_seed(0)
    model = gk.Sequential([gk.layers.GRU(8, zoneout=0.2, recurrent_dropout=0.1), gk.layers.Dense(1)])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(16, 5, 3)).astype("float32")
    model.fit(x, x[:, -1, :1], epochs=1, verbose=0)
    model.save(tmp_path / "m.grukit")
    again = gk.load(tmp_path / "m.grukit")
    assert again.layers[0].zoneout == 0.2
    np.testing.assert_allclose(again.predict(x), model.predict(x), rtol=0, atol=0)
