"""The fused CPU engine's Python side: fake implementations and autograd for its ops.

``torch.ops.grukit.gru_layer_forward`` runs one layer in one direction over all
time steps (csrc/gru.cpp); ``gru_layer_backward`` is its hand-written backward
through time. Here each op gets a fake (meta) implementation, which says the
shapes of its outputs without computing them, and the forward op gets its
backward registered with ``torch.library.register_autograd``; so torch.compile
and torch.export see the ops whole, with no graph break. :func:`gru_layer` has
the signature of :func:`grukit.reference.gru_layer`, so the stacking code is shared.

Imported by grukit.engines only when the compiled extension has loaded.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import torch
from torch import Tensor

from . import reference
from .reference import LayerWeights

_ops = torch.ops.grukit
# The compiled module's pybind11 functions (csrc/gru.cpp), for eager calls: the kernels the
# ops run, without the ops' dispatch; None until use_extension, or for an extension built
# before them.
_direct_stack = _direct_cell = _direct_layer = _direct_layer_backward = None


def use_extension(core: Any) -> None:
    """Take the pybind11 functions of the compiled module ``core`` (engines calls this once it
    has loaded the extension)."""
    global _direct_stack, _direct_cell, _direct_layer, _direct_layer_backward
    _direct_stack = getattr(core, "stack_forward", None)
    _direct_cell = getattr(core, "cell_forward", None)
    _direct_layer = getattr(core, "layer_forward", None)
    _direct_layer_backward = getattr(core, "layer_backward", None)


def _direct(x: Tensor) -> bool:
    """Whether a call may skip torch.ops' dispatch for the pybind11 function (3-8 us less a call:
    a decoder's step, or gk.GRUCell's; benchmarks/README.md, session 21): an eager call on a plain
    tensor, with no tracer, compiler, profiler or Python mode that must see the op whole."""
    return (type(x) is Tensor and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and not torch._C._autograd._profiler_enabled() and not torch._C._is_torch_function_mode_enabled()
            and torch._C._len_torch_dispatch_stack() == 0)


# ------------------------------------------------------------- fake kernels

# The fused layer op's arguments and outputs, in its schema's order (csrc/gru.cpp), named
# once: the fake kernels, the autograd below and gru_layer index them by these names.
LAYER_ARGS = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "lengths", "resets", "zoneout", "h_mask",
              "ln_ih", "ln_hh", "reset_after", "reverse", "save")
LAYER_OUTPUTS = ("y", "h_last", "gates", "hp", "xhat_ih", "rstd_ih", "xhat_hh", "rstd_hh")
DIFFERENTIABLE = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "ln_ih", "ln_hh")  # the gradients' order
# what the backward reads: the kernel's saved tensors, and the inputs a differentiable
# backward recomputes from (reference.through_reference)
SAVED = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "ln_ih", "ln_hh", "lengths", "resets", "zoneout",
         "h_mask", "gates", "hp", "xhat_ih", "rstd_ih", "xhat_hh", "rstd_hh")


@torch.library.register_fake("grukit::gru_layer_forward")
def _forward_fake(*args: Any) -> list[Tensor]:
    a = dict(zip(LAYER_ARGS, args, strict=True))
    x, save = a["x"], a["save"]
    T, B, H = x.shape[0], x.shape[1], a["w_hh"].shape[1]
    keep_ln = save and a["ln_ih"] is not None

    def saved(keep: bool, *shape: Any) -> Tensor:  # saved for the backward, else empty
        return x.new_empty(*shape) if keep else x.new_empty(0)

    return [x.new_empty(T, B, H), x.new_empty(B, H), saved(save, T, B, 4 * H), saved(save, T, B, H),
            saved(keep_ln, T, B, 3 * H), saved(keep_ln, T, B),
            saved(keep_ln, T, B, 3 * H), saved(keep_ln, T, B)]


@torch.library.register_fake("grukit::gru_layer_backward")
def _backward_fake(dy, dh_n, x, w_ih, w_hh, gates, hp, lengths, resets, zoneout, h_mask, ln, has_bias,
                   reset_after, reverse):
    H = w_hh.shape[1]
    bias = (lambda: x.new_empty(3 * H)) if has_bias else (lambda: x.new_empty(0))
    gain = (lambda: x.new_empty(3 * H)) if ln else (lambda: x.new_empty(0))
    return [torch.empty_like(x), torch.empty_like(dh_n), torch.empty_like(w_ih), torch.empty_like(w_hh),
            bias(), bias(), gain(), gain()]


@torch.library.register_fake("grukit::gru_stack_forward")
def _stack_fake(x, h0, weights, has_bias, num_layers, bidirectional, lengths, reset_after, batch_sizes=None):
    D = 2 if bidirectional else 1
    return [x.new_empty(*x.shape[:-1], D * h0.shape[2]), torch.empty_like(h0)]


@torch.library.register_fake("grukit::step_matmul")
def _step_matmul_fake(A, W, bias, packed):
    return A.new_empty(A.shape[0], W.shape[0])


@torch.library.register_fake("grukit::mingru_scan_forward")
def _mingru_forward_fake(gates, h0):
    return gates.new_empty(gates.shape[0], gates.shape[1], h0.shape[1])


@torch.library.register_fake("grukit::mingru_scan_backward")
def _mingru_backward_fake(dy, gates, h, h0):
    return [torch.empty_like(gates), torch.empty_like(h0)]


# ------------------------------------------------------------------ autograd

_SAVED_AT = tuple((LAYER_ARGS + LAYER_OUTPUTS).index(n) for n in SAVED)  # positions in (*inputs, *outputs)
_FLAGS_AT = (LAYER_ARGS.index("reset_after"), LAYER_ARGS.index("reverse"))


def _save(ctx: Any, inputs: tuple, output: list) -> None:
    both = (*inputs, *output)
    ctx.save_for_backward(*(both[i] for i in _SAVED_AT))
    ctx.flags = (inputs[_FLAGS_AT[0]], inputs[_FLAGS_AT[1]])


def _setup_context(ctx: Any, inputs: tuple, output: list) -> None:
    ctx.mark_non_differentiable(*output[2:])
    ctx.set_materialize_grads(False)  # no zero-filled gradients for the saved tensors
    _save(ctx, inputs, output)


def _reference_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                     b_hh: Optional[Tensor], ln_ih: Optional[Tensor], ln_hh: Optional[Tensor], *,
                     lengths: Optional[Tensor], resets: Optional[Tensor], zoneout: Optional[Tensor],
                     h_mask: Optional[Tensor], reset_after: bool, reverse: bool) -> tuple[Tensor, Tensor]:
    """The fused op's function on the reference engine, its DIFFERENTIABLE inputs first."""
    return reference.gru_layer(x, h0, (w_ih, w_hh, b_ih, b_hh), reset_after, lengths, reverse, h_mask=h_mask,
                               resets=resets, zoneout=zoneout,
                               layer_norm=None if ln_ih is None else (ln_ih, ln_hh))


def _backward(ctx: Any, grads: list) -> tuple:
    s = dict(zip(SAVED, ctx.saved_tensors, strict=True))
    reset_after, reverse = ctx.flags
    dy, dh_n = grads[0], grads[1]
    if torch.is_grad_enabled() or reference.batched(dy) or reference.batched(dh_n):  # see through_reference
        layer = functools.partial(_reference_layer, lengths=s["lengths"], resets=s["resets"],
                                  zoneout=s["zoneout"], h_mask=s["h_mask"], reset_after=reset_after,
                                  reverse=reverse)
        found = reference.through_reference(layer, tuple(s[n] for n in DIFFERENTIABLE), (dy, dh_n))
    else:
        x, w_hh = s["x"], s["w_hh"]
        if dy is None:
            dy = x.new_zeros(x.shape[0], x.shape[1], w_hh.shape[1])
        if dh_n is None:
            dh_n = torch.zeros_like(s["h0"])
        has_ln = s["ln_ih"] is not None
        ln = [s[n] for n in ("ln_ih", "ln_hh", "xhat_ih", "rstd_ih", "xhat_hh", "rstd_hh")] if has_ln else []
        op = (_direct_layer_backward if _direct_layer_backward is not None and _direct(x)
              else _ops.gru_layer_backward)
        found = op(dy, dh_n, x, s["w_ih"], w_hh, s["gates"], s["hp"], s["lengths"], s["resets"], s["zoneout"],
                   s["h_mask"], ln, s["b_ih"] is not None, reset_after, reverse)
    named = {n: g for n, g in zip(DIFFERENTIABLE, found, strict=True) if s[n] is not None}
    return tuple(named.get(n) for n in LAYER_ARGS)


torch.library.register_autograd("grukit::gru_layer_forward", _backward, setup_context=_setup_context)


def _scan_setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
    gates, h0 = inputs
    ctx.save_for_backward(gates, output, h0)


def _scan_backward(ctx: Any, dh: Tensor) -> tuple:
    gates, h, h0 = ctx.saved_tensors
    if torch.is_grad_enabled() or reference.batched(dh):  # see through_reference
        dgates, dh0 = reference.through_reference(lambda g, s: (reference.mingru_scan(g, s),),
                                                  (gates, h0), (dh,))
        return dgates, dh0
    dgates, dh0 = _ops.mingru_scan_backward(dh, gates, h, h0)
    return dgates, dh0


torch.library.register_autograd("grukit::mingru_scan_forward", _scan_backward,
                                setup_context=_scan_setup_context)


_DIFF_AT = tuple(LAYER_ARGS.index(n) for n in DIFFERENTIABLE)
_REST_AT = tuple(i for i in range(len(LAYER_ARGS)) if i not in _DIFF_AT)


class _EagerLayer(torch.autograd.Function):
    """The same forward and backward as the registration above, for eager calls. It
    returns only (y, h_n), keeping the saved tensors off the autograd graph's outputs:
    about 0.2 ms less per call than the registered op, most of a short sequence's
    training step at B=1. Its inputs are the DIFFERENTIABLE ones and a tuple of the rest
    (fewer arguments for autograd to look through: a few microseconds a call)."""

    @staticmethod
    def forward(ctx: Any, *inputs: Any) -> tuple[Tensor, Tensor]:
        *diff, rest = inputs
        args = [None] * len(LAYER_ARGS)
        for i, v in zip(_DIFF_AT, diff, strict=True):
            args[i] = v
        for i, v in zip(_REST_AT, rest, strict=True):
            args[i] = v
        if _direct_layer is not None and _direct(args[0]):  # the kernel itself, through pybind11
            out = _direct_layer(*args)
        else:
            with torch._C._AutoDispatchBelowAutograd():  # the kernel itself: not the autograd
                out = _ops.gru_layer_forward(*args)  # registered above (Python, about 10 us a call)
        _save(ctx, tuple(args), out)
        return out[0], out[1]

    @staticmethod
    def backward(ctx: Any, dy: Tensor, dh_n: Tensor) -> tuple:
        found = _backward(ctx, [dy, dh_n])
        return (*(found[i] for i in _DIFF_AT), None)


# ------------------------------------------------------------------ callers

class _EagerScan(torch.autograd.Function):
    """minGRU's fused scan for eager calls (as _EagerLayer for the GRU)."""

    @staticmethod
    def forward(ctx: Any, gates: Tensor, h0: Tensor) -> Tensor:
        h = _ops.mingru_scan_forward(gates, h0)
        _scan_setup_context(ctx, (gates, h0), h)
        return h

    @staticmethod
    def backward(ctx: Any, dh: Tensor) -> tuple:
        return _scan_backward(ctx, dh)


def mingru_scan(gates: Tensor, h0: Tensor) -> Tensor:
    """minGRU's scan on the fused engine: h (T, B, H) from the gates [k | v] (T, B, 2H);
    the same function as reference.mingru_scan."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():  # the op whole, with the autograd
        return _ops.mingru_scan_forward(gates, h0)  # registered above (a trace cannot save a Python op)
    return _EagerScan.apply(gates, h0)


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
    tracing = torch.jit.is_tracing()  # one graph whatever the grad mode, and no Python op in it
    save = (torch.is_grad_enabled() or tracing) and any(
        t is not None and t.requires_grad for t in (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh))
    if save and not torch.compiler.is_compiling() and not tracing:  # DIFFERENTIABLE, then the rest
        return _EagerLayer.apply(x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh,
                                 (lens, rs, zoneout, h_mask, reset_after, reverse, save))
    # inference, or traced by torch.compile / torch.export / torch.jit.trace: the op whole
    op = _direct_layer if _direct_layer is not None and not save and _direct(x) else _ops.gru_layer_forward
    out = op(x, h0, w_ih, w_hh, b_ih, b_hh, lens, rs, zoneout, h_mask, ln_ih, ln_hh, reset_after, reverse,
             save)  # LAYER_ARGS' order
    return out[0], out[1]


def gru_stack_inference(
    x: Tensor,
    h0: Tensor,
    weights: list[Tensor],
    has_bias: bool,
    num_layers: int,
    bidirectional: bool,
    lengths: Optional[Tensor],
    reset_after: bool,
    batch_sizes: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """All layers and directions in one compiled call, without autograd (inference).

    x: (T, B, I), h0: (L*D, B, H); weights flat in torch's parameter order. With
    ``batch_sizes`` (a PackedSequence's), x is the packed data (N, I), the output is packed
    alike (N, D*H), and h0 and h_n are in the packed order: each step then takes only the
    rows still running, and no padding is made.
    """
    lens = None if lengths is None else lengths.to("cpu", torch.int64)
    op = _direct_stack if _direct_stack is not None and _direct(x) else _ops.gru_stack_forward
    out, h_n = op(x, h0, weights, has_bias, num_layers, bidirectional, lens, reset_after, batch_sizes)
    return out, h_n


def gru_cell_inference(x: Tensor, h: Tensor, weights: tuple[Optional[Tensor], ...], has_bias: bool,
                       reset_after: bool) -> Tensor:
    """One step of gk.GRUCell without autograd (inference): x (B, I), h (B, H) -> (B, H);
    weights (w_ih, w_hh, b_ih, b_hh), the biases None without bias."""
    if _direct_cell is not None and _direct(x):
        return _direct_cell(x, h, *weights, reset_after)
    flat = list(weights) if has_bias else list(weights[:2])
    _, h_n = _ops.gru_stack_forward(x.unsqueeze(0), h.unsqueeze(0), flat, has_bias, 1, False, None,
                                    reset_after)
    return h_n[0]
