"""The GRU math that ``torch.jit.script`` compiles where a model holds a gk.GRU or gk.GRUCell.

A model holding ``torch.nn.GRU`` or ``torch.nn.GRUCell`` scripts: its forward calls them and
TorchScript compiles their forwards. grukit's forwards choose an engine in Python, which
TorchScript cannot compile, so each module answers ``__prepare_scriptable__`` (the hook that
``torch.jit.script`` calls on every module of the tree before compiling it) with a copy of
itself (modules.ScriptableGRU, modules.ScriptableGRUCell) that shares its parameters and whose
forward TorchScript compiles: the functions below, the GRU math of grukit/reference.py written in
the subset TorchScript reads (both conventions, layers, directions, lengths, layer norm; in
training, dropout between layers, zoneout and recurrent dropout drawn as the reference draws
them, so that one seed gives engine="reference"'s outputs). Called eagerly, the copy runs the
module's own forward (every engine and argument). ``torch.jit.script`` leaves the copy in the eager model
it was given (it writes the hook's answer back into the parent's modules); the copy is an
instance of gk.GRU (gk.GRUCell), with the same parameters, so the eager model computes as before.

What the compiled forward takes: ``(input, hx)`` for the cell (torch's signature) and
``(input, h0, lengths, hx, resets)`` for the GRU (gk.GRU's), tensors only (a PackedSequence is not a
tensor: scripted code passes the padded batch and ``lengths``); ``resets`` is refused there.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor


def _linear(inp: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    """inp W^T (+ b). A bias of None never reaches a differentiable op: TorchScript's autodiff
    gives zero weight gradients (then fails) for linear(x, w, None) once its executor has
    optimised the graph."""
    if b is None:
        return torch.nn.functional.linear(inp, w)
    return torch.nn.functional.linear(inp, w, b)


def _project(inp: Tensor, w: Tensor, b: Optional[Tensor], gain: Optional[Tensor]) -> Tensor:
    """inp W^T + b, or LN(inp W^T) * gain + b (reference._project)."""
    if gain is None:
        return _linear(inp, w, b)
    a = torch.nn.functional.linear(inp, w)
    if b is None:
        return torch.nn.functional.layer_norm(a, [a.shape[-1]], gain, None, 1e-5)  # reference.LAYER_NORM_EPS
    return torch.nn.functional.layer_norm(a, [a.shape[-1]], gain, b, 1e-5)


def cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
         ln_ih: Optional[Tensor], ln_hh: Optional[Tensor], reset_after: bool, h_mask: Optional[Tensor]
         ) -> Tensor:
    """One step (reference.gru_cell). x (B, I), h (B, H) -> (B, H)."""
    gi = _project(x, w_ih, b_ih, ln_ih)
    gi_r, gi_z, gi_n = gi.chunk(3, 1)
    h_in = h if h_mask is None else h * h_mask
    if reset_after:
        gh = _project(h_in, w_hh, b_hh, ln_hh)
        gh_r, gh_z, gh_n = gh.chunk(3, 1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
    else:
        w_hr, w_hz, w_hn = w_hh.chunk(3, 0)
        b_hr: Optional[Tensor] = None
        b_hz: Optional[Tensor] = None
        b_hn: Optional[Tensor] = None
        if b_hh is not None:
            b_hr, b_hz, b_hn = b_hh.chunk(3)
        r = torch.sigmoid(gi_r + _linear(h_in, w_hr, b_hr))
        z = torch.sigmoid(gi_z + _linear(h_in, w_hz, b_hz))
        n = torch.tanh(gi_n + _linear(r * h_in, w_hn, b_hn))
    return (1 - z) * n + z * h


def layer(x: Tensor, h: Tensor, w: List[Tensor], gains: List[Tensor], reset_after: bool, reverse: bool,
          lengths: Optional[Tensor], keep: Optional[Tensor], h_mask: Optional[Tensor]
          ) -> Tuple[Tensor, Tensor]:
    """One layer-direction over time (reference.gru_layer): x (T, B, I), h (B, H) -> (T, B, H), (B, H).
    w: [w_ih, w_hh] or [w_ih, w_hh, b_ih, b_hh]; gains: [] or [ln_ih, ln_hh]; keep: (T, B, H) zoneout
    shares; rows past their length give zeros and keep their state."""
    b_ih: Optional[Tensor] = None
    b_hh: Optional[Tensor] = None
    if len(w) == 4:
        b_ih, b_hh = w[2], w[3]
    ln_ih: Optional[Tensor] = None
    ln_hh: Optional[Tensor] = None
    if len(gains) == 2:
        ln_ih, ln_hh = gains[0], gains[1]
    T = x.shape[0]
    outputs: List[Tensor] = [x.new_empty(0)] * T
    for s in range(T):
        t = T - 1 - s if reverse else s
        h_new = cell(x[t], h, w[0], w[1], b_ih, b_hh, ln_ih, ln_hh, reset_after, h_mask)
        if keep is not None:
            h_new = keep[t] * h + (1 - keep[t]) * h_new
        if lengths is None:
            h = h_new
            outputs[t] = h_new
        else:
            valid = (t < lengths).unsqueeze(1)
            h = torch.where(valid, h_new, h)
            outputs[t] = torch.where(valid, h_new, torch.zeros_like(h_new))
    return torch.stack(outputs), h


def stack(x: Tensor, h0: Tensor, flat: List[Tensor], gains: List[Tensor], num_layers: int, directions: int,
          has_bias: bool, reset_after: bool, lengths: Optional[Tensor], dropout: float, zoneout: float,
          recurrent_dropout: float, training: bool) -> Tuple[Tensor, Tensor]:
    """The layers (reference.gru): x (T, B, I), h0 (L*D, B, H) -> (T, B, D*H), (L*D, B, H). flat: the
    weights in torch's order (2 or 4 per layer-direction), gains: 2 per layer-direction or none."""
    per = 4 if has_bias else 2
    H = h0.shape[2]
    h_n: List[Tensor] = []
    inp = x
    for li in range(num_layers):
        outs: List[Tensor] = []
        for d in range(directions):
            k = li * directions + d
            keep: Optional[Tensor] = None
            if zoneout > 0:
                share = inp.new_full([inp.shape[0], inp.shape[1], H], zoneout)
                keep = torch.bernoulli(share) if training else share
            h_mask: Optional[Tensor] = None
            if recurrent_dropout > 0 and training:
                kept = 1 - recurrent_dropout
                h_mask = torch.bernoulli(h0.new_full([h0.shape[1], H], kept)) / kept
            out, h_last = layer(inp, h0[k], flat[per * k:per * k + per], gains[2 * k:2 * k + 2], reset_after,
                                d == 1, lengths, keep, h_mask)
            outs.append(out)
            h_n.append(h_last)
        inp = outs[0] if directions == 1 else torch.cat(outs, 2)
        if dropout > 0 and training and li < num_layers - 1:
            inp = torch.nn.functional.dropout(inp, dropout, True)
    return inp, torch.stack(h_n)
