"""recurrent_dropout= on gk.GRU: one mask per sequence on the state feeding the
recurrent matmul (Keras' scheme), fused engine == reference, gradients included."""

import pytest
import torch
from _helpers import seeded_outputs_and_grads as _grads

import grukit as gk
from grukit import engines

ENGINES = ["reference"] + (["cpu"] if engines.compiled_cpu() is not None else [])


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B,H", [(3, 7), (2, 64), (32, 64)])
@pytest.mark.parametrize("zoneout", [0.0, 0.2])
def test_fused_equals_reference_in_float64(reset_after, B, H, zoneout):
    torch.manual_seed(0)
    kw = dict(num_layers=2, reset_after=reset_after, recurrent_dropout=0.4, zoneout=zoneout)
    ref = gk.GRU(5, H, engine="reference", **kw).double()
    T = 8
    x = torch.randn(T, B, 5, dtype=torch.float64)
    h0 = torch.randn(2, B, H, dtype=torch.float64)
    call = dict(lengths=torch.randint(1, T + 1, (B,)), resets=torch.rand(T, B) < 0.2)
    want = _grads(ref, x, h0, 3, **call)
    for engine in ENGINES:
        m = gk.GRU(5, H, engine=engine, **kw).double()
        m.load_state_dict(ref.state_dict())
        got = _grads(m, x, h0, 3, **call)
        assert m.last_engine == engine
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("engine", ENGINES)
def test_masks_act_in_training_only_and_match_the_cell(engine):
    torch.manual_seed(0)
    m = gk.GRU(3, 16, recurrent_dropout=0.5, engine=engine)
    plain = gk.GRU(3, 16, engine=engine)
    plain.load_state_dict(m.state_dict())
    x = torch.randn(7, 4, 3)
    torch.testing.assert_close(m.eval()(x)[0], plain(x)[0], rtol=0, atol=0)
    m.train()
    torch.manual_seed(5)
    y, _ = m(x)
    torch.manual_seed(5)
    mask = torch.bernoulli(torch.full((4, 16), 0.5)) / 0.5  # the draw the module makes
    h, outs = torch.zeros(4, 16), []
    w = (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0)
    for t in range(7):
        h = gk.reference.gru_cell(x[t], h, *w, h_mask=mask)
        outs.append(h)
    torch.testing.assert_close(y, torch.stack(outs))


def test_bad_recurrent_dropout_is_named():
    with pytest.raises(ValueError, match="recurrent_dropout must be below 1"):
        gk.GRU(3, 8, recurrent_dropout=1.0)
    with pytest.raises(TypeError, match="recurrent_dropout must be a float"):
        gk.GRU(3, 8, recurrent_dropout="0.1")
