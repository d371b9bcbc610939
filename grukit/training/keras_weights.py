"""A GRU's weights in Keras' layout, as NumPy arrays: what a layer's ``get_weights()`` gives
and ``set_weights`` takes (Keras' methods, training/layers.py), and what Keras files hold
(formats/keras_files.py).

A GRU's variables are Keras' ``[kernel (I, 3H), recurrent_kernel (H, 3H), bias]``, gate
blocks z, r, h (grukit's rows r, z, n: gate_order.swap_zr); the bias is (2, 3H) with
reset_after (input and recurrent biases) and (3H,) without (Keras' one bias, outside both
matmuls: all of it goes on the input side).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..gate_order import swap_zr


def gru_keras_tensors(gru: Any, direction: str) -> list[torch.Tensor]:
    """[kernel (I, 3H), recurrent_kernel (H, 3H), bias] of one direction of a gk.GRU, as tensors
    on the parameters' graph (a regularizer's gradient flows back to them)."""
    sfx = "_l0" + direction
    p = dict(gru.named_parameters())
    out = [swap_zr(p["weight_ih" + sfx], 0).T, swap_zr(p["weight_hh" + sfx], 0).T]
    if gru.bias:
        b_ih, b_hh = p["bias_ih" + sfx], p["bias_hh" + sfx]
        out.append(torch.stack([swap_zr(b_ih, 0), swap_zr(b_hh, 0)]) if gru.reset_after
                   else swap_zr(b_ih + b_hh, 0))
    return out


def gru_to_keras(gru: Any, direction: str) -> list[np.ndarray]:
    """[kernel (I, 3H), recurrent_kernel (H, 3H), bias] of one direction of a gk.GRU."""
    with torch.no_grad():
        return [np.ascontiguousarray(t.cpu().numpy()) for t in gru_keras_tensors(gru, direction)]


def gru_from_keras(gru: Any, direction: str, arrays: list[np.ndarray], where: str) -> None:
    sfx = "_l0" + direction
    H = gru.hidden_size
    expect = [(gru.input_size, 3 * H), (H, 3 * H)]
    if gru.bias:
        expect.append((2, 3 * H) if gru.reset_after else (3 * H,))
    got = [np.shape(a) for a in arrays]
    if got != expect:
        raise ValueError(f"{where}: GRU variables must have shapes {expect}, got {got}")
    arrays = [np.asarray(a) for a in arrays]  # copy_ casts to the parameters' dtype
    state = {"weight_ih" + sfx: swap_zr(arrays[0], 1).T, "weight_hh" + sfx: swap_zr(arrays[1], 1).T}
    if gru.bias:
        bias = arrays[2]
        if gru.reset_after:
            state["bias_ih" + sfx], state["bias_hh" + sfx] = swap_zr(bias[0], 0), swap_zr(bias[1], 0)
        else:  # Keras' one bias sits outside both matmuls: all of it on the input side
            state["bias_ih" + sfx], state["bias_hh" + sfx] = swap_zr(bias, 0), np.zeros_like(bias)
    params = dict(gru.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
