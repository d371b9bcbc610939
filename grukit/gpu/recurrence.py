"""The Triton engine's layer op: one layer in one direction, forward and hand-written
backward, registered as the custom ops ``grukit::triton_layer_forward`` and
``grukit::triton_layer_backward`` (fake kernels and autograd below), so that
torch.compile(fullgraph=True) and torch.export see them whole.

The forward: the input projection of all steps as one GEMM (with its layer norm and
bias), then the recurrence, either

* step by step (any H): per step one cuBLAS GEMM of the recurrent projection and one
  fused kernel (kernels.fwd_step) for everything else; reset_after=False takes two
  GEMMs and two kernels (the n gate's matmul needs r first); or
* persistent (H <= PERSISTENT_MAX_H): the whole time loop in one launch
  (kernels.fwd_seq), W_hh held on-chip.

The backward runs the same way in reverse (kernels.bwd_step / bwd_seq), writing the
gradients of every step's projections; the weight gradients are then large GEMMs over
all steps at once, with no atomics: deterministic. The function and its arguments are
those of the CPU engine's layer op (grukit.function.LAYER_ARGS) and of
reference.gru_layer; a backward that must itself be differentiable (create_graph=True,
vmap-batched gradients) recomputes the layer on the reference engine as the CPU
engine does (reference.through_reference).

Inputs may be float32, bfloat16 or float16 (under autocast, the autocast dtype):
matmuls run in that dtype with float32 accumulation, everything else in float32, and
the state is float32 throughout.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import reference
from . import graphs, kernels

# measured on an H200 (benchmarks/README.md): at H=64 the per-step loop replayed as a
# CUDA graph already beats the persistent kernel; at H=32 the persistent kernel is faster
PERSISTENT_MAX_H = int(os.environ.get("GRUKIT_TRITON_PERSISTENT_MAX_H", "32"))
f32 = torch.float32


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _blocks(B: int, H: int, persistent: bool) -> tuple[int, int]:
    BH = max(16, _pow2(H))
    if persistent:  # tl.dot needs 16 rows at least
        return 16, BH
    return min(_pow2(B), max(1, 2048 // BH)), BH


def _warps(BH: int) -> int:
    """Warps for the persistent kernels: at BH=64 four warps hold W_hh only by spilling
    registers (ptxas -v, sm_90), eight hold it without."""
    return 4 if BH <= 32 else 8


def _persistent(H: int, mode: Optional[str]) -> bool:
    if mode is not None:
        return mode == "persistent"
    return H <= PERSISTENT_MAX_H


# what the persistent/step choice was forced to, for tests and benchmarks (None: by H)
MODE: Optional[str] = os.environ.get("GRUKIT_TRITON_MODE") or None


def _dtype(x: Tensor) -> torch.dtype:
    """The dtype the matmuls run in: autocast's where it is on, else the input's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _input_projection(x: Tensor, w_ih: Tensor, b_ih: Optional[Tensor], ln_ih: Optional[Tensor],
                      dt: torch.dtype) -> Tensor:
    """gi (T, B, 3H) in dt: x W_ih^T + b_ih, or LN(x W_ih^T) * ln_ih + b_ih."""
    a = torch.matmul(x.to(dt), w_ih.to(dt).t())
    if ln_ih is not None:
        a = F.layer_norm(a.float(), a.shape[-1:], ln_ih.float(), None if b_ih is None else b_ih.float(),
                         eps=reference.LAYER_NORM_EPS)
        return a.to(dt)
    return a if b_ih is None else a + b_ih.to(dt)


def _order(T: int, reverse: bool) -> list[int]:
    return list(range(T - 1, -1, -1)) if reverse else list(range(T))


def _flags(lengths, resets, zoneout, h_mask) -> dict:
    return dict(HAS_MASK=h_mask is not None, HAS_ZONE=zoneout is not None, HAS_LENS=lengths is not None,
                HAS_RESETS=resets is not None)


def _cut(resets: Optional[Tensor], lengths: Optional[Tensor], t: int) -> Optional[Tensor]:
    """(B, 1) whether the state is reset before step t, or None without resets."""
    if resets is None:
        return None
    cut = resets[t] != 0
    if lengths is not None:
        cut = cut & (t < lengths)
    return cut.unsqueeze(1)


def _forward(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
             b_hh: Optional[Tensor], lengths: Optional[Tensor], resets: Optional[Tensor],
             zoneout: Optional[Tensor], h_mask: Optional[Tensor], ln_ih: Optional[Tensor],
             ln_hh: Optional[Tensor], reset_after: bool, reverse: bool, save: bool) -> list[Tensor]:
    dt = x.dtype
    H = w_hh.shape[1]
    with torch.autocast(x.device.type, enabled=False):
        gi = _input_projection(x, w_ih, b_ih, ln_ih, dt).contiguous()
        inputs = [gi, w_hh.to(dt).contiguous(), b_hh, ln_hh, h0.to(f32).contiguous(),
                  None if h_mask is None else h_mask.contiguous(),
                  None if zoneout is None else zoneout.contiguous(),
                  None if lengths is None else lengths.contiguous(),
                  None if resets is None else resets.to(torch.uint8).contiguous()]
        flags = (reset_after, reverse, save)
        if _persistent(H, MODE):
            out = _seq_forward(*inputs, *flags)
        else:  # T launches of each kernel: replayed from a CUDA graph where it can be
            out = graphs.replay(("forward", *flags), lambda *a: _step_forward(*a, *flags), inputs)
    y, h = out[0], out[1]
    return [y, h.to(h0.dtype), *out[2:]]


def _forward_outputs(gi: Tensor, H: int, ln: bool, reset_after: bool, save: bool) -> list[Tensor]:
    """y and what the backward reads (empty where not saved), allocated for the loops below."""
    T, B = gi.shape[0], gi.shape[1]
    new = lambda *shape: torch.empty(*shape, device=gi.device, dtype=f32)  # noqa: E731
    return [torch.empty(T, B, H, device=gi.device, dtype=gi.dtype),
            new(T, B, 3 * H) if save or not reset_after else new(0),
            new(T, B, H) if save and reset_after else new(0),
            new(T, B, 3 * H) if save and ln else new(0),
            new(T, B) if save and ln else new(0),
            new(T, B, H) if save else new(0)]


def _seq_forward(gi: Tensor, w: Tensor, b_hh: Optional[Tensor], ln_hh: Optional[Tensor], h0: Tensor,
                 mask: Optional[Tensor], zone: Optional[Tensor], lens: Optional[Tensor], rs: Optional[Tensor],
                 reset_after: bool, reverse: bool, save: bool) -> list[Tensor]:
    """The recurrence in one launch of the persistent kernel: [y, h_last, gates, ghn, xhat, rstd, hprev]."""
    T, B, H = gi.shape[0], gi.shape[1], w.shape[1]
    y, gates, ghn, xhat, rstd, hprev = _forward_outputs(gi, H, ln_hh is not None, reset_after, save)
    h = h0.clone()
    opt = lambda t: rstd.new_empty(0) if t is None else t  # noqa: E731
    BB, BH = _blocks(B, H, True)
    kernels.fwd_seq[(triton_cdiv(B, BB),)](
        gi, w, opt(b_hh), opt(ln_hh), h, opt(mask), opt(zone), opt(lens), opt(rs),
        y, gates, ghn, xhat, rstd, hprev, T, B, H, REVERSE=reverse, RESET_AFTER=reset_after,
        HAS_BIAS=b_hh is not None, HAS_LN=ln_hh is not None, SAVE=save, BB=BB, BH=BH,
        num_warps=_warps(BH), **_flags(lens, rs, zone, mask))
    return [y, h, gates, ghn, xhat, rstd, hprev]


def _step_forward(gi: Tensor, w: Tensor, b_hh: Optional[Tensor], ln_hh: Optional[Tensor], h0: Tensor,
                  mask: Optional[Tensor], zone: Optional[Tensor], lens: Optional[Tensor],
                  rs: Optional[Tensor], reset_after: bool, reverse: bool, save: bool) -> list[Tensor]:
    """The recurrence step by step: per step a cuBLAS GEMM and kernels.fwd_step (two of
    each for reset_after=False). Same outputs as _seq_forward."""
    T, B, H = gi.shape[0], gi.shape[1], w.shape[1]
    dt = gi.dtype
    y, gates, ghn, xhat, rstd, hprev = _forward_outputs(gi, H, ln_hh is not None, reset_after, save)
    opt = lambda t: rstd.new_empty(0) if t is None else t  # noqa: E731
    BB, BH = _blocks(B, H, False)
    grid = (triton_cdiv(B, BB),)
    common = _flags(lens, rs, zone, mask)
    order = _order(T, reverse)
    h = h0.clone()
    cut = _cut(rs, lens, order[0])
    if cut is not None:
        h = torch.where(cut, 0.0, h)
    hin = (h if mask is None else h * mask).to(dt)
    rh = torch.empty(B, H, device=gi.device, dtype=dt) if not reset_after else opt(None)
    for i, t in enumerate(order):
        has_next = i + 1 < T
        if reset_after:
            gh = torch.mm(hin, w.t())
        else:
            kernels.fwd_rz[grid](gi, torch.mm(hin, w[:2 * H].t()), opt(b_hh), h, opt(mask), gates, rh,
                                 t, B, H, HAS_BIAS=b_hh is not None, HAS_MASK=mask is not None,
                                 BB=BB, BH=BH)
            gh = torch.mm(rh, w[2 * H:].t())
        kernels.fwd_step[grid](gi, gh, opt(b_hh), opt(ln_hh), h, opt(mask), opt(zone), opt(lens), opt(rs),
                               y, gates, ghn, xhat, rstd, hprev, hin, t,
                               order[i + 1] if has_next else 0, B, H, RESET_AFTER=reset_after,
                               HAS_BIAS=b_hh is not None, HAS_LN=ln_hh is not None, HAS_NEXT=has_next,
                               SAVE=save, BB=BB, BH=BH, **common)
    return [y, h, gates, ghn, xhat, rstd, hprev]


def _backward(dy: Optional[Tensor], dh_n: Optional[Tensor], x: Tensor, h0: Tensor, w_ih: Tensor,
              w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], ln_ih: Optional[Tensor],
              ln_hh: Optional[Tensor], lengths: Optional[Tensor], resets: Optional[Tensor],
              zoneout: Optional[Tensor], h_mask: Optional[Tensor], gates: Tensor, ghn: Tensor, xhat: Tensor,
              rstd: Tensor, hprev: Tensor, reset_after: bool, reverse: bool) -> list[Tensor]:
    dt = x.dtype
    T, B = x.shape[0], x.shape[1]
    H = w_hh.shape[1]
    with torch.autocast(x.device.type, enabled=False):
        w = w_hh.to(dt).contiguous()
        new = lambda *shape: torch.empty(*shape, device=x.device, dtype=f32)  # noqa: E731
        none = new(0)
        g = (torch.zeros(B, H, device=x.device, dtype=f32) if dh_n is None
             else dh_n.to(f32).contiguous())
        mask = None if h_mask is None else h_mask.contiguous()
        inputs = [None if dy is None else dy.contiguous(), g, w, mask,
                  None if zoneout is None else zoneout.contiguous(),
                  None if lengths is None else lengths.contiguous(),
                  None if resets is None else resets.to(torch.uint8).contiguous(),
                  ln_hh, gates, ghn, xhat, rstd, hprev]
        if _persistent(H, MODE):
            dgi, dgh, dgh_post, dh0 = _seq_backward(*inputs, reset_after, reverse)
        else:
            loop = lambda *a: _step_backward(*a, reset_after, reverse)  # noqa: E731
            dgi, dgh, dgh_post, dh0 = graphs.replay(("backward", reset_after, reverse), loop, inputs)
        # the weight gradients: GEMMs over all steps at once
        hin = hprev if mask is None else hprev * mask
        flat = lambda t: t.reshape(T * B, -1).to(dt)  # noqa: E731
        if reset_after:
            dw_hh = (flat(dgh).t() @ flat(hin)).float()
        else:
            dw_hh = torch.cat([flat(dgh[..., :2 * H]).t() @ flat(hin),
                               flat(dgh[..., 2 * H:]).t() @ flat(gates[..., :H] * hin)]).float()
        post = dgh_post if ln_hh is not None else dgh
        db_hh = post.sum((0, 1)) if b_hh is not None else none
        dln_hh = (post * xhat).sum((0, 1)) if ln_hh is not None else none
        # the input projection's gradients (by hand: autograd does not run inside an op)
        db_ih = dgi.float().sum((0, 1)) if b_ih is not None else none
        dln_ih = none
        da = dgi
        if ln_ih is not None:  # gi = xhat * ln_ih + b_ih, xhat = LN(x W_ih^T)
            a = torch.matmul(x, w_ih.to(dt).t()).float()
            mean = a.mean(-1, keepdim=True)
            rstd_ih = torch.rsqrt(a.var(-1, unbiased=False, keepdim=True) + reference.LAYER_NORM_EPS)
            xh = (a - mean) * rstd_ih
            dln_ih = (dgi.float() * xh).sum((0, 1))
            dxh = dgi.float() * ln_ih.float()
            da = rstd_ih * (dxh - dxh.mean(-1, keepdim=True) - xh * (dxh * xh).mean(-1, keepdim=True))
            da = da.to(dt)
        dx = torch.matmul(da, w_ih.to(dt))
        dw_ih = (flat(da).t() @ flat(x)).float()
    dtypes = (x.dtype, h0.dtype, w_ih.dtype, w_hh.dtype)
    return [dx.to(dtypes[0]), dh0.to(dtypes[1]), dw_ih.to(dtypes[2]), dw_hh.to(dtypes[3]),
            db_ih.to(b_ih.dtype) if b_ih is not None else new(0),
            db_hh.to(b_hh.dtype) if b_hh is not None else new(0),
            dln_ih.to(ln_ih.dtype) if ln_ih is not None else new(0),
            dln_hh.to(ln_hh.dtype) if ln_hh is not None else new(0)]


def _backward_outputs(gates: Tensor, dt: torch.dtype, ln: bool) -> list[Tensor]:
    """dgi (in the matmul dtype), dgh and dgh_post (before the layer norm of gh)."""
    T, B, H3 = gates.shape
    new = lambda *shape: torch.empty(*shape, device=gates.device, dtype=f32)  # noqa: E731
    return [torch.empty(T, B, H3, device=gates.device, dtype=dt), new(T, B, H3),
            new(T, B, H3) if ln else new(0)]


def _seq_backward(dy: Optional[Tensor], g_last: Tensor, w: Tensor, mask: Optional[Tensor],
                  zone: Optional[Tensor], lens: Optional[Tensor], rs: Optional[Tensor],
                  ln_hh: Optional[Tensor], gates: Tensor, ghn: Tensor, xhat: Tensor, rstd: Tensor,
                  hprev: Tensor, reset_after: bool, reverse: bool) -> list[Tensor]:
    """The backward through time in one launch of the persistent kernel: [dgi, dgh, dgh_post, dh0]."""
    T, B, H = hprev.shape
    dgi, dgh, dgh_post = _backward_outputs(gates, w.dtype, ln_hh is not None)
    g = g_last.clone()
    opt = lambda t: dgh.new_empty(0) if t is None else t  # noqa: E731
    BB, BH = _blocks(B, H, True)
    kernels.bwd_seq[(triton_cdiv(B, BB),)](
        opt(dy), g, w, opt(mask), opt(zone), opt(lens), opt(rs), opt(ln_hh),
        gates, ghn, xhat, rstd, hprev, dgi, dgh, dgh_post, T, B, H,
        REVERSE=reverse, RESET_AFTER=reset_after, HAS_LN=ln_hh is not None,
        HAS_DY=dy is not None, BB=BB, BH=BH, num_warps=_warps(BH), **_flags(lens, rs, zone, mask))
    return [dgi, dgh, dgh_post, g]


def _step_backward(dy: Optional[Tensor], g_last: Tensor, w: Tensor, mask: Optional[Tensor],
                   zone: Optional[Tensor], lens: Optional[Tensor], rs: Optional[Tensor],
                   ln_hh: Optional[Tensor], gates: Tensor, ghn: Tensor, xhat: Tensor, rstd: Tensor,
                   hprev: Tensor, reset_after: bool, reverse: bool) -> list[Tensor]:
    """The backward through time step by step (kernels.bwd_step, and bwd_r for
    reset_after=False, around cuBLAS GEMMs). Same outputs as _seq_backward."""
    T, B, H = hprev.shape
    dt = w.dtype
    dgi, dgh, dgh_post = _backward_outputs(gates, dt, ln_hh is not None)
    g = g_last.clone()
    opt = lambda t: dgh.new_empty(0) if t is None else t  # noqa: E731
    BB, BH = _blocks(B, H, False)
    grid = (triton_cdiv(B, BB),)
    common = _flags(lens, rs, zone, mask)
    order = _order(T, reverse)[::-1]  # the forward's steps, last first
    ghin = torch.zeros(B, H, device=g.device, dtype=f32)
    extra = torch.empty(B, H, device=g.device, dtype=f32) if not reset_after else opt(None)
    for i, t in enumerate(order):
        kernels.bwd_step[grid](opt(dy), g, ghin, opt(mask), opt(zone), opt(lens), opt(rs), opt(ln_hh),
                               gates, ghn, xhat, rstd, hprev, dgi, dgh, dgh_post, t,
                               order[i - 1] if i > 0 else 0, B, H, RESET_AFTER=reset_after,
                               HAS_LN=ln_hh is not None, HAS_NEXT=i > 0, HAS_DY=dy is not None,
                               BB=BB, BH=BH, **common)
        if reset_after:
            ghin = torch.mm(dgh[t].to(dt), w).float()
        else:
            drh = torch.mm(dgh[t, :, 2 * H:].to(dt), w[2 * H:])
            kernels.bwd_r[grid](drh, opt(mask), gates, hprev, dgi, dgh, extra, t, B, H,
                                HAS_MASK=mask is not None, BB=BB, BH=BH)
            ghin = extra + torch.mm(dgh[t, :, :2 * H].to(dt), w[:2 * H]).float()
    dh0 = g + (ghin if mask is None else ghin * mask)
    cut = _cut(rs, lens, order[-1])
    if cut is not None:
        dh0 = torch.where(cut, 0.0, dh0)
    return [dgi, dgh, dgh_post, dh0]


# ------------------------------------------------------------------- the custom ops
# The arguments of the forward op, in the order of the CPU engine's layer op.
LAYER_ARGS = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "lengths", "resets", "zoneout", "h_mask",
              "ln_ih", "ln_hh", "reset_after", "reverse", "save")
LAYER_OUTPUTS = ("y", "h_last", "gates", "ghn", "xhat", "rstd", "hprev")
DIFFERENTIABLE = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "ln_ih", "ln_hh")
INPUTS_SAVED = ("x", "h0", "w_ih", "w_hh", "b_ih", "b_hh", "ln_ih", "ln_hh", "lengths", "resets", "zoneout",
                "h_mask")


@torch.library.custom_op("grukit::triton_layer_forward", mutates_args=())
def layer_forward(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                  b_hh: Optional[Tensor], lengths: Optional[Tensor], resets: Optional[Tensor],
                  zoneout: Optional[Tensor], h_mask: Optional[Tensor], ln_ih: Optional[Tensor],
                  ln_hh: Optional[Tensor], reset_after: bool, reverse: bool, save: bool) -> list[Tensor]:
    """One layer-direction on the Triton engine: y (T, B, H), h_last (B, H) and what the
    backward reads (empty where not saved)."""
    return _forward(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, resets, zoneout, h_mask, ln_ih, ln_hh,
                    reset_after, reverse, save)


@layer_forward.register_fake
def _forward_fake(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, resets, zoneout, h_mask, ln_ih, ln_hh,
                  reset_after, reverse, save):
    T, B, H = x.shape[0], x.shape[1], w_hh.shape[1]
    new = lambda keep, *shape: x.new_empty(*shape, dtype=f32) if keep else x.new_empty(0, dtype=f32)  # noqa: E731
    ln = save and ln_hh is not None
    return [x.new_empty(T, B, H), h0.new_empty(B, H), new(save or not reset_after, T, B, 3 * H),
            new(save and reset_after, T, B, H), new(ln, T, B, 3 * H), new(ln, T, B), new(save, T, B, H)]


@torch.library.custom_op("grukit::triton_layer_backward", mutates_args=())
def layer_backward(dy: Optional[Tensor], dh_n: Optional[Tensor], x: Tensor, h0: Tensor, w_ih: Tensor,
                   w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], ln_ih: Optional[Tensor],
                   ln_hh: Optional[Tensor], lengths: Optional[Tensor], resets: Optional[Tensor],
                   zoneout: Optional[Tensor], h_mask: Optional[Tensor], gates: Tensor, ghn: Tensor,
                   xhat: Tensor, rstd: Tensor, hprev: Tensor, reset_after: bool, reverse: bool,
                   ) -> list[Tensor]:
    """The hand-written backward of layer_forward: the gradients of DIFFERENTIABLE (empty
    for an absent bias or gain)."""
    return _backward(dy, dh_n, x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, lengths, resets, zoneout, h_mask,
                     gates, ghn, xhat, rstd, hprev, reset_after, reverse)


@layer_backward.register_fake
def _backward_fake(dy, dh_n, x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, *rest):
    opt = lambda t: x.new_empty(0, dtype=f32) if t is None else torch.empty_like(t)  # noqa: E731
    return [torch.empty_like(x), torch.empty_like(h0), torch.empty_like(w_ih), torch.empty_like(w_hh),
            opt(b_ih), opt(b_hh), opt(ln_ih), opt(ln_hh)]


def _setup_context(ctx: Any, inputs: tuple, output: list) -> None:
    named = dict(zip(LAYER_ARGS, inputs, strict=True))
    ctx.mark_non_differentiable(*output[2:])
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(*(named[n] for n in INPUTS_SAVED), *output[2:])
    ctx.flags = (named["reset_after"], named["reverse"])


def _reference_layer(x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh, *, lengths, resets, zoneout, h_mask,
                     reset_after, reverse):
    return reference.gru_layer(x, h0, (w_ih, w_hh, b_ih, b_hh), reset_after, lengths, reverse, h_mask=h_mask,
                               resets=None if resets is None else resets != 0, zoneout=zoneout,
                               layer_norm=None if ln_ih is None else (ln_ih, ln_hh))


def _autograd_backward(ctx: Any, grads: list) -> tuple:
    saved = ctx.saved_tensors
    s = dict(zip(INPUTS_SAVED, saved[:len(INPUTS_SAVED)], strict=True))
    kept = saved[len(INPUTS_SAVED):]
    reset_after, reverse = ctx.flags
    dy, dh_n = grads[0], grads[1]
    if torch.is_grad_enabled() or reference.batched(dy) or reference.batched(dh_n):
        def layer(*inputs):
            return _reference_layer(*inputs, lengths=s["lengths"], resets=s["resets"], zoneout=s["zoneout"],
                                    h_mask=s["h_mask"], reset_after=reset_after, reverse=reverse)
        found = reference.through_reference(layer, tuple(s[n] for n in DIFFERENTIABLE), (dy, dh_n))
    else:
        found = layer_backward(dy, dh_n, *(s[n] for n in INPUTS_SAVED), *kept, reset_after, reverse)
    named = {n: g for n, g in zip(DIFFERENTIABLE, found, strict=True) if s[n] is not None}
    return tuple(named.get(n) for n in LAYER_ARGS)


layer_forward.register_autograd(_autograd_backward, setup_context=_setup_context)


def gru_layer(
    x: Tensor,
    h0: Tensor,
    weights: reference.LayerWeights,
    reset_after: bool = True,
    lengths: Optional[Tensor] = None,
    reverse: bool = False,
    resets: Optional[Tensor] = None,
    zoneout: Optional[Tensor] = None,
    h_mask: Optional[Tensor] = None,
    layer_norm: Optional[tuple[Tensor, Tensor]] = None,
) -> tuple[Tensor, Tensor]:
    """One layer, one direction, on the Triton engine. Same contract as reference.gru_layer.
    Under autocast the input and weights enter the op in the autocast dtype."""
    w_ih, w_hh, b_ih, b_hh = weights
    ln_ih, ln_hh = (None, None) if layer_norm is None else layer_norm
    dt = _dtype(x)
    if dt != x.dtype:
        x = x.to(dt)
    lens = None if lengths is None else lengths.to(x.device, torch.int64)
    rs = None if resets is None else resets.to(x.device, torch.uint8)
    save = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, h0, w_ih, w_hh, b_ih, b_hh, ln_ih, ln_hh))
    out = layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, lens, rs, zoneout, h_mask, ln_ih, ln_hh,
                        reset_after, reverse, save)
    return out[0], out[1]
