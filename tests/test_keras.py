"""gk.interop against Keras 3 GRU on its torch backend, both reset conventions."""

import numpy as np
import pytest
import torch
from _helpers import assert_all_close

import grukit as gk

keras = pytest.importorskip("keras")  # a dev dependency: installed by `make test`

I, H, T, B = 5, 6, 7, 3


def _keras_gru(reset_after, use_bias, seed=0):
    keras.utils.set_random_seed(seed)
    layer = keras.layers.GRU(H, reset_after=reset_after, use_bias=use_bias,
                             return_sequences=True, return_state=True)
    layer.build((B, T, I))
    # Keras initialises biases to zero: random ones make the bias test meaningful.
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.4, w.shape).astype("float32") for w in layer.get_weights()])
    return layer


def _to_keras_layout(t: torch.Tensor, axis: int) -> torch.Tensor:
    r, z, n = t.chunk(3, dim=axis)
    return torch.cat([z, r, n], dim=axis)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
def test_from_keras_matches_outputs_states_and_gradients(reset_after, use_bias):
    layer = _keras_gru(reset_after, use_bias)
    gru = gk.interop.from_keras(layer)
    assert gru.batch_first and gru.reset_after == reset_after and gru.bias == use_bias

    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, I, generator=g, requires_grad=True)
    h0 = torch.randn(B, H, generator=g, requires_grad=True)
    out_k, h_k = layer(x, initial_state=h0)
    out_o, h_o = gru(x, h0[None])
    assert_all_close({"output": out_o, "h_n": h_o[0]}, {"output": out_k, "h_n": h_k})

    d_out, d_h = torch.randn(out_k.shape, generator=g), torch.randn(h_k.shape, generator=g)
    k_vars = [w.value for w in layer.weights]
    gk_k = torch.autograd.grad((out_k, h_k), [x, h0, *k_vars], (d_out, d_h))
    o_params = [gru.weight_ih_l0, gru.weight_hh_l0] + ([gru.bias_ih_l0] if use_bias else [])
    if use_bias and reset_after:
        o_params.append(gru.bias_hh_l0)
    g_o = torch.autograd.grad((out_o, h_o[0]), [x, h0, *o_params], (d_out, d_h))

    ours = {"input": g_o[0], "h0": g_o[1],
            "kernel": _to_keras_layout(g_o[2], 0).T,
            "recurrent_kernel": _to_keras_layout(g_o[3], 0).T}
    theirs = {"input": gk_k[0], "h0": gk_k[1], "kernel": gk_k[2], "recurrent_kernel": gk_k[3]}
    if use_bias:
        b = _to_keras_layout(g_o[4], 0)
        ours["bias"] = torch.stack([b, _to_keras_layout(g_o[5], 0)]) if reset_after else b
        theirs["bias"] = gk_k[4]
    assert_all_close(ours, theirs)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_to_keras_sets_a_keras_layer_to_the_same_function(reset_after, bias):
    torch.manual_seed(2)
    gru = gk.GRU(I, H, bias=bias, batch_first=True, reset_after=reset_after)
    weights = gk.interop.to_keras(gru)
    expected_bias = [(2, 3 * H) if reset_after else (3 * H,)] if bias else []
    assert [w.shape for w in weights] == [(I, 3 * H), (H, 3 * H), *expected_bias]
    layer = keras.layers.GRU(H, reset_after=reset_after, use_bias=bias,
                             return_sequences=True, return_state=True)
    layer.build((B, T, I))
    layer.set_weights(weights)
    x = torch.randn(B, T, I)
    with torch.no_grad():
        out_k, h_k = layer(x)
        out_o, h_o = gru(x)
    assert_all_close({"output": out_o, "h_n": h_o[0]},
                     {"output": out_k.detach(), "h_n": h_k.detach()})
    # and back: the round trip keeps the function
    again = gk.interop.from_keras(layer)
    with torch.no_grad():
        assert_all_close({"output": again(x)[0]}, {"output": out_o})


def test_from_keras_refuses_what_it_cannot_copy():
    with pytest.raises(TypeError, match="layer must be a keras.layers.GRU"):
        gk.interop.from_keras(torch.nn.GRU(2, 3))
    with pytest.raises(ValueError, match="layer must be built"):
        gk.interop.from_keras(keras.layers.GRU(3))
    back = keras.layers.GRU(3, go_backwards=True)
    back.build((1, 2, 2))
    with pytest.raises(ValueError, match="go_backwards"):
        gk.interop.from_keras(back)
    relu = keras.layers.GRU(3, activation="relu")
    relu.build((1, 2, 2))
    with pytest.raises(ValueError, match="layer.activation must be 'tanh'"):
        gk.interop.from_keras(relu)


def test_to_keras_refuses_what_keras_cannot_hold():
    with pytest.raises(TypeError, match="gru must be a grukit.GRU"):
        gk.interop.to_keras(torch.nn.GRU(2, 3))
    with pytest.raises(ValueError, match="num_layers=1 and bidirectional=False"):
        gk.interop.to_keras(gk.GRU(2, 3, num_layers=2))
    with pytest.raises(ValueError, match="num_layers=1 and bidirectional=False"):
        gk.interop.to_keras(gk.GRU(2, 3, bidirectional=True))
