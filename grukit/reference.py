"""The GRU math in plain PyTorch ops, differentiated by autograd.

This file is the specification every faster engine is tested against. It is
written to be read, never optimised. For an input x_t and the previous state
h_{t-1} (sigma = logistic sigmoid, * = elementwise product)::

    r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    reset_after=True  (PyTorch, cuDNN, Keras' default, ONNX linear_before_reset=1):
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    reset_after=False (Cho et al. 2014, Keras reset_after=False):
        n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                       new state

where W_i* are the row blocks of ``weight_ih`` (3H, I) and W_h* those of
``weight_hh`` (3H, H), in the gate order r, z, n; b_i* and b_h* the blocks of
``bias_ih`` and ``bias_hh`` (3H). Some texts swap z and 1 - z in the last line:
that is the same model with the update gate's pre-activation negated.

With ``layer_norm`` (reset_after=True only; Ba et al. 2016, as Haste's
LayerNormGRU), each projection is normalised over its 3H values before its bias:
``gi = LN(W_ih x_t) * ln_ih + b_ih`` and ``gh = LN(W_hh h_{t-1}) * ln_hh + b_hh``, where
LN(a) = (a - mean(a)) / sqrt(var(a) + 1e-5) and ln_ih, ln_hh (3H) are learned gains
(the parameters ``layer_norm_ih_l{k}``, ``layer_norm_hh_l{k}``).

Names (the same in the C++ kernels; docs/architecture.md): ``gi`` = input projection
(gi_r, gi_z, gi_n), ``gh`` = recurrent projection (gh_r, gh_z, gh_n); ``h_mask`` = the
recurrent-dropout mask; ``h_n`` = the final states of a call, nothing else.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

# One layer-direction's parameters: (weight_ih, weight_hh, bias_ih, bias_hh);
# the biases may be None.
LayerWeights = tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]
# One layer-direction's layer-norm gains (ln_ih, ln_hh), each (3H,).
LayerNormGains = tuple[Tensor, Tensor]
LAYER_NORM_EPS = 1e-5


def _project(inp: Tensor, w: Tensor, b: Optional[Tensor], gain: Optional[Tensor]) -> Tensor:
    """inp W^T + b, or LN(inp W^T) * gain + b with a layer-norm gain."""
    if gain is None:
        return torch.nn.functional.linear(inp, w, b)
    a = torch.nn.functional.linear(inp, w)
    return torch.nn.functional.layer_norm(a, a.shape[-1:], gain, b, eps=LAYER_NORM_EPS)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor] = None,
    b_hh: Optional[Tensor] = None,
    reset_after: bool = True,
    h_mask: Optional[Tensor] = None,
    layer_norm: Optional[LayerNormGains] = None,
) -> Tensor:
    """One GRU step. x: (B, I), h: (B, H) -> new h: (B, H).

    ``h_mask`` (B, H), recurrent dropout as Keras does it: the state that feeds the
    recurrent matmul is ``h * h_mask``; the state carried in the last line is not.
    ``layer_norm``: the gains (ln_ih, ln_hh) of a layer-normalised GRU (reset_after only).
    """
    ln_ih, ln_hh = (None, None) if layer_norm is None else layer_norm
    if layer_norm is not None and not reset_after:
        raise ValueError("layer_norm needs reset_after=True (the recurrent projection is normalised "
                         "whole, before the reset gate), got reset_after=False")
    gi = _project(x, w_ih, b_ih, ln_ih)  # (B, 3H)
    gi_r, gi_z, gi_n = gi.chunk(3, dim=1)
    h_in = h if h_mask is None else h * h_mask
    if reset_after:
        gh = _project(h_in, w_hh, b_hh, ln_hh)  # (B, 3H)
        gh_r, gh_z, gh_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(gi_r + gh_r)
        z = torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
    else:
        w_hr, w_hz, w_hn = w_hh.chunk(3, dim=0)
        b_hr, b_hz, b_hn = (None, None, None) if b_hh is None else b_hh.chunk(3)
        r = torch.sigmoid(gi_r + torch.nn.functional.linear(h_in, w_hr, b_hr))
        z = torch.sigmoid(gi_z + torch.nn.functional.linear(h_in, w_hz, b_hz))
        n = torch.tanh(gi_n + torch.nn.functional.linear(r * h_in, w_hn, b_hn))
    return (1 - z) * n + z * h


def gru_layer(
    x: Tensor,
    h0: Tensor,
    weights: LayerWeights,
    reset_after: bool = True,
    lengths: Optional[Tensor] = None,
    reverse: bool = False,
    h_mask: Optional[Tensor] = None,
    resets: Optional[Tensor] = None,
    zoneout: Optional[Tensor] = None,
    layer_norm: Optional[LayerNormGains] = None,
) -> tuple[Tensor, Tensor]:
    """Run one layer in one direction over time.

    x: (T, B, I), h0: (B, H), lengths: (B,) int64 or None.
    Returns output (T, B, H) and the final state (B, H).

    With ``lengths``, row b is valid for t < lengths[b]: its output is zero past
    that and its state freezes, so the final state is the state after its last
    valid step. Run in reverse, row b starts at its own last valid step.
    ``h_mask``: recurrent dropout, one (B, H) mask for the whole sequence (gru_cell).
    ``resets``: (T, B) bool; where set at a valid step, row b's state is zeroed
    before step t (an episode boundary), so nothing before it reaches what follows.
    ``zoneout``: (T, B, H), the share of each unit's previous state that it keeps at
    step t (Krueger et al. 2016): h_t = m h_{t-1} + (1 - m) h'_t.
    ``layer_norm``: the layer-norm gains (ln_ih, ln_hh), see gru_cell.
    """
    T = x.shape[0]
    h = h0
    outputs: list[Tensor] = [x.new_empty(0)] * T
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        if resets is not None:
            cut = resets[t] if lengths is None else resets[t] & (t < lengths)
            h = torch.where(cut.unsqueeze(1), torch.zeros_like(h), h)
        h_new = gru_cell(x[t], h, *weights, reset_after=reset_after, h_mask=h_mask, layer_norm=layer_norm)
        if zoneout is not None:
            h_new = zoneout[t] * h + (1 - zoneout[t]) * h_new
        if lengths is None:
            h = h_new
            outputs[t] = h_new
        else:
            valid = (t < lengths).unsqueeze(1)  # (B, 1)
            h = torch.where(valid, h_new, h)
            outputs[t] = torch.where(valid, h_new, torch.zeros_like(h_new))
    return torch.stack(outputs), h


LayerFn = Callable[..., tuple[Tensor, Tensor]]


def gru(
    x: Tensor,
    h0: Tensor,
    weights: Sequence[LayerWeights],
    num_layers: int,
    bidirectional: bool,
    reset_after: bool = True,
    lengths: Optional[Tensor] = None,
    dropout: float = 0.0,
    training: bool = False,
    layer: LayerFn = gru_layer,
    resets: Optional[Tensor] = None,
    zoneout: float = 0.0,
    recurrent_dropout: float = 0.0,
    layer_norm: Optional[Sequence[LayerNormGains]] = None,
) -> tuple[Tensor, Tensor]:
    """A stack of GRU layers, optionally bidirectional.

    x: (T, B, I), h0: (L*D, B, H) with D = 2 if bidirectional else 1;
    ``weights[l * D + d]`` holds layer l, direction d (1 = reverse).
    Returns output (T, B, D*H) of the last layer and h_n (L*D, B, H).
    Dropout with probability ``dropout`` is applied to the outputs of every
    layer but the last, in training only. ``layer`` runs one layer-direction
    (engines pass their own; the default is the reference loop above).
    ``resets`` (T, B) bool is passed to every layer (see gru_layer). ``zoneout``: the
    probability that a unit keeps its previous state at a step: a fresh (T, B, H)
    0/1 draw per layer and direction in training, the probability itself otherwise.
    ``recurrent_dropout``: in training, one (B, H) mask per layer and direction for
    the whole sequence on the state that feeds the recurrent matmul (gru_cell's h_mask).
    ``layer_norm``: per layer-direction, like ``weights``, the layer-norm gains.
    """
    D = 2 if bidirectional else 1
    h_n: list[Tensor] = []
    inp = x
    for l in range(num_layers):
        outs = []
        for d in range(D):
            k = l * D + d
            extra = {} if resets is None else {"resets": resets}
            if zoneout > 0:
                H = h0.shape[-1]
                share = inp.new_full((inp.shape[0], inp.shape[1], H), zoneout)
                extra["zoneout"] = torch.bernoulli(share) if training else share
            if recurrent_dropout > 0 and training:
                keep = 1 - recurrent_dropout
                extra["h_mask"] = torch.bernoulli(h0.new_full(h0.shape[1:], keep)) / keep
            if layer_norm is not None:
                extra["layer_norm"] = layer_norm[k]
            out, h_last = layer(
                inp, h0[k], weights[k], reset_after=reset_after,
                lengths=lengths, reverse=d == 1, **extra,
            )
            outs.append(out)
            h_n.append(h_last)
        inp = outs[0] if D == 1 else torch.cat(outs, dim=2)  # (T, B, D*H)
        if dropout > 0 and training and l < num_layers - 1:
            inp = torch.nn.functional.dropout(inp, p=dropout, training=True)
    return inp, h_n[0].unsqueeze(0) if len(h_n) == 1 else torch.stack(h_n)  # one layer: a view, cheaper


def mingru_g(v: Tensor) -> Tensor:
    """minGRU's candidate activation: v + 0.5 for v >= 0, else sigma(v) (always > 0)."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def mingru_scan(gates: Tensor, h0: Tensor) -> Tensor:
    """minGRU's recurrence (Feng et al. 2024; grukit.mingru), one step at a time.

    gates: (T, B, 2H), the pre-activations [k | v] of every step; h0: (B, H).
    h_t = (1 - z_t) h_{t-1} + z_t g(v_t) with z_t = sigma(k_t). Returns h (T, B, H).
    """
    k, v = gates.chunk(2, dim=-1)
    z, cand = torch.sigmoid(k), mingru_g(v)
    h, out = h0, []
    for t in range(gates.shape[0]):
        h = (1 - z[t]) * h + z[t] * cand[t]
        out.append(h)
    return torch.stack(out)


# ------------------------------------------------- gradients through the reference

def batched(t: Optional[Tensor]) -> bool:
    """Whether t is a vmap-batched tensor: the gradient of a backward run for
    ``torch.autograd.grad(..., is_grads_batched=True)`` or under ``torch.func.vmap``."""
    f = torch._C._functorch
    return t is not None and (f.is_legacy_batchedtensor(t) or f.is_batchedtensor(t))


def through_reference(forward: Callable[..., tuple[Tensor, ...]], inputs: tuple, grads: tuple,
                      ) -> list[Optional[Tensor]]:
    """The gradients of ``forward(*inputs)`` (plain PyTorch ops) for the output gradients
    ``grads``, one per input (None where the input needs none).

    A fused backward calls this instead of its kernel where the kernel cannot serve:
    when a graph of the backward is being built (``create_graph=True``: a gradient
    penalty, a Hessian-vector product, gradgradcheck), so that the gradients are
    themselves differentiable, and when the incoming gradients are vmap-batched. The
    forward is recomputed from the saved inputs, which stay connected to the caller's
    graph, and differentiated by autograd: exact, at the reference engine's speed.
    """
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    with torch.enable_grad():
        outputs = forward(*inputs)
    pairs = [(o, g) for o, g in zip(outputs, grads, strict=True) if g is not None]
    found = torch.autograd.grad([o for o, _ in pairs], [inputs[i] for i in wrt], [g for _, g in pairs],
                                create_graph=torch.is_grad_enabled(), allow_unused=True)
    result: list[Optional[Tensor]] = [None] * len(inputs)
    for i, g in zip(wrt, found, strict=True):
        result[i] = g
    return result
