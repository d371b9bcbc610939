"""The fused CPU engine: an autograd.Function over the compiled ops.

``torch.ops.grukit.gru_layer_forward`` runs one layer in one direction over all
time steps (csrc/gru.cpp); ``gru_layer_backward`` is its hand-written backward
through time. This module connects them to autograd and has the same signature
as :func:`grukit.reference.gru_layer`, so the stacking code is shared.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from . import engines
from .reference import LayerWeights

if engines.compiled_cpu() is None:  # pragma: no cover - engines.resolve never picks us then
    raise ImportError("grukit's compiled CPU engine is not built")

_ops = torch.ops.grukit


class GRULayerFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                b_hh: Optional[Tensor], lengths: Optional[Tensor], resets: Optional[Tensor],
                zoneout: Optional[Tensor], h_mask: Optional[Tensor], ln_ih: Optional[Tensor],
                ln_hh: Optional[Tensor], reset_after: bool, reverse: bool) -> tuple[Tensor, Tensor]:
        y, h_n, gates, hp, *norm = _ops.gru_layer_forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, lengths, resets, zoneout, h_mask, ln_ih, ln_hh, reset_after,
            reverse, True)
        ln = [ln_ih, ln_hh, *norm] if ln_ih is not None else []
        ctx.save_for_backward(x, w_ih, w_hh, gates, hp, lengths, resets, zoneout, h_mask, *ln)
        ctx.flags = (b_ih is not None, reset_after, reverse)
        return y, h_n

    @staticmethod
    def backward(ctx: Any, dy: Tensor, dh_n: Tensor):
        x, w_ih, w_hh, gates, hp, lengths, resets, zoneout, h_mask, *ln = ctx.saved_tensors
        has_bias, reset_after, reverse = ctx.flags
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dln_ih, dln_hh = _ops.gru_layer_backward(
            dy, dh_n, x, w_ih, w_hh, gates, hp, lengths, resets, zoneout, h_mask, ln, has_bias, reset_after,
            reverse)
        if not has_bias:
            db_ih = db_hh = None
        if not ln:
            dln_ih = dln_hh = None
        return (dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None, None, None, None, dln_ih, dln_hh, None, None)


def gru_layer(
    x: Tensor,
    h0: Tensor,
    weights: LayerWeights,
    reset_after: bool = True,
    lengths: Optional[Tensor] = None,
    reverse: bool = False,
    resets: Optional[Tensor] = None,
    zoneout: Optional[Tensor] = None,
    h_mask: Optional[Tensor] = None,
    layer_norm: Optional[tuple[Tensor, Tensor]] = None,
) -> tuple[Tensor, Tensor]:
    """One layer, one direction, on the fused engine. Same contract as reference.gru_layer."""
    w_ih, w_hh, b_ih, b_hh = weights
    ln_ih, ln_hh = (None, None) if layer_norm is None else layer_norm
    lens = None if lengths is None else lengths.to("cpu", torch.int64)
    rs = None if resets is None else resets.to("cpu", torch.bool).contiguous()
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh))
    if not needs_grad:
        y, h_n = _ops.gru_layer_forward(
            x, h0, w_ih, w_hh, b_ih, b_hh, lens, rs, zoneout, h_mask, ln_ih, ln_hh, reset_after, reverse,
            False)[:2]
        return y, h_n
    return GRULayerFunction.apply(x, h0, w_ih, w_hh, b_ih, b_hh, lens, rs, zoneout, h_mask, ln_ih, ln_hh,
                                  reset_after, reverse)


def gru_stack_inference(
    x: Tensor,
    h0: Tensor,
    weights: list[Tensor],
    has_bias: bool,
    num_layers: int,
    bidirectional: bool,
    lengths: Optional[Tensor],
    reset_after: bool,
) -> tuple[Tensor, Tensor]:
    """All layers and directions in one compiled call, without autograd (inference).

    x: (T, B, I), h0: (L*D, B, H); weights flat in torch's parameter order.
    """
    lens = None if lengths is None else lengths.to("cpu", torch.int64)
    out, h_n = _ops.gru_stack_forward(x, h0, weights, has_bias, num_layers, bidirectional, lens,
                                      reset_after)
    return out, h_n
