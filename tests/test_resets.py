"""resets=: the state is zeroed before flagged steps (episode boundaries inside a
sequence), on the reference and the fused engine alike, gradients included."""

import pytest
import torch
from _helpers import seeded_outputs_and_grads as _grads

import grukit as gk
from grukit import engines

ENGINES = ["reference"] + (["cpu"] if engines.compiled_cpu() is not None else [])


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B,H", [(3, 7), (2, 64), (32, 64)])  # small, split loop, batched
@pytest.mark.parametrize("layers", [1, 2])
def test_fused_equals_reference_in_float64(reset_after, B, H, layers):
    torch.manual_seed(0)
    ref = gk.GRU(5, H, num_layers=layers, reset_after=reset_after, engine="reference").double()
    T = 9
    x = torch.randn(T, B, 5, dtype=torch.float64)
    h0 = torch.randn(layers, B, H, dtype=torch.float64)
    resets = torch.rand(T, B) < 0.3
    resets[0, 0] = True
    lengths = torch.randint(1, T + 1, (B,))
    want = _grads(ref, x, h0, 1, resets=resets, lengths=lengths)
    for engine in ENGINES:
        m = gk.GRU(5, H, num_layers=layers, reset_after=reset_after, engine=engine).double()
        m.load_state_dict(ref.state_dict())
        got = _grads(m, x, h0, 1, resets=resets, lengths=lengths)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_reset_is_a_fresh_start(engine):
    """After a reset at step k, the outputs are those of the sequence started at k
    from a zero state, and nothing before k gets a gradient from them."""
    torch.manual_seed(0)
    m = gk.GRU(4, 16, engine=engine)
    x = torch.randn(10, 2, 4, requires_grad=True)
    resets = torch.zeros(10, 2, dtype=torch.bool)
    resets[6, 0] = True
    y, _ = m(x, torch.randn(1, 2, 16), resets=resets)
    fresh, _ = m(x[6:, :1])
    torch.testing.assert_close(y[6:, :1], fresh)
    y[6:, 0].sum().backward()
    assert (x.grad[:6, 0] == 0).all() and (x.grad[6:, 0] != 0).any() and (x.grad[:, 1] == 0).all()


def test_inference_and_training_paths_agree_and_float32_matches():
    torch.manual_seed(0)
    ref = gk.GRU(6, 32, engine="reference")
    m = gk.GRU(6, 32)
    m.load_state_dict(ref.state_dict())
    x = torch.randn(20, 4, 6)
    resets = torch.rand(20, 4) < 0.2
    with torch.no_grad():
        a, ha = m(x, resets=resets)
    b, hb = ref(x, resets=resets)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ha, hb)
    none = torch.zeros(20, 4, dtype=torch.bool)
    torch.testing.assert_close(m(x, resets=none)[0], m(x)[0], rtol=0, atol=0)


def test_batch_first_and_unbatched_take_time_major_resets():
    torch.manual_seed(0)
    m = gk.GRU(3, 8, batch_first=True)
    x = torch.randn(2, 5, 3)
    resets = torch.zeros(5, 2, dtype=torch.bool)
    resets[2, 1] = True
    y, _ = m(x, resets=resets)
    y1, _ = m(x[1, 2:][None])
    torch.testing.assert_close(y[1, 2:], y1[0])
    yu, _ = gk.GRU(3, 8)(x[0], resets=torch.tensor([False, True, False, False, False]))
    assert yu.shape == (5, 8)


def test_bad_resets_are_named():
    m = gk.GRU(3, 8)
    x = torch.randn(5, 2, 3)
    with pytest.raises(TypeError, match="resets must be a bool tensor, got dtype torch.int64"):
        m(x, resets=torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"resets must have shape \(5, 2\)"):
        m(x, resets=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="resets must be a torch.Tensor"):
        m(x, resets=[[True, False]] * 5)
    with pytest.raises(ValueError, match="one direction"):
        gk.GRU(3, 8, bidirectional=True)(x, resets=torch.zeros(5, 2, dtype=torch.bool))
