"""The Triton kernels of the GPU engine (``engine="triton"``).

Imported only when Triton is installed (grukit.gpu.recurrence loads it lazily). Every
kernel works on a block of BB batch rows by BH >= H hidden units (BH a power of two,
the units past H masked off), so that a program holds whole rows: the layer norm of
the recurrent projection and the reset-before matmul need all of a row's units.

Two forward kernels and two backward kernels compute one layer in one direction:

* ``fwd_step`` / ``bwd_step``: one time step per launch. The recurrent matmul of the
  step runs between launches as one cuBLAS GEMM over the batch (recurrence.py), and the
  kernel fuses everything else: the gate math of both conventions, the bias, layer
  norm, zoneout, recurrent dropout, resets and lengths, and writes what the backward
  reads. Any hidden size.
* ``fwd_seq`` / ``bwd_seq``: the persistent kernels for small hidden sizes. One launch
  runs the whole time loop; each program loads W_hh once, keeps it on-chip and steps
  its own rows through time (rows are independent, so no grid-wide barrier is needed
  and the interpreter runs it as it is).

Arithmetic and the state are float32 whatever the input's dtype (float32, bfloat16,
float16); matmuls inside the kernels use ``tl.dot`` with ``input_precision="ieee"`` in
float32, so that the interpreter's results match the reference to rounding.

Names as in grukit.reference: gi = input projection (T, B, 3H) with its bias, gh =
recurrent projection, h_mask = the recurrent-dropout mask, zone = the zoneout shares.
Saved for the backward (float32): ``gates`` (T, B, 3H) = r, z, n; ``ghn`` (T, B, H) =
the recurrent n part after layer norm and bias (reset_after); ``xhat`` (T, B, 3H) and
``rstd`` (T, B) = the layer norm of gh; ``hprev`` (T, B, H) = the state entering each
step (after its reset).
"""

from __future__ import annotations

import triton
import triton.language as tl

LN_EPS = 1e-5


@triton.jit
def _sigmoid(a):
    return 1.0 / (1.0 + tl.exp(-a))


@triton.jit
def _tanh(a):
    # 2 sigma(2a) - 1, exact at both ends (no inf/inf)
    return 2.0 / (1.0 + tl.exp(-2.0 * a)) - 1.0


@triton.jit
def _row_valid(lens, t, rb, rmask, HAS_LENS: tl.constexpr):
    """(BB, 1) whether step t is inside each row's length."""
    if HAS_LENS:
        n = tl.load(lens + rb, mask=rmask, other=0)
        return (t < n)[:, None]
    else:
        return (rb >= 0)[:, None]


@triton.jit
def _cut(resets, lens, t, B, rb, rmask, HAS_LENS: tl.constexpr):
    """(BB, 1) whether the state is reset before step t (a reset at a valid step)."""
    r = tl.load(resets + t * B + rb, mask=rmask, other=0) != 0
    return (r[:, None]) & _row_valid(lens, t, rb, rmask, HAS_LENS)


@triton.jit
def _ln(a_r, a_z, a_n, cmask, H, LN_EPS_: tl.constexpr):
    """Layer norm over a row's 3H values held as three (BB, BH) blocks."""
    mean = (tl.sum(a_r, 1) + tl.sum(a_z, 1) + tl.sum(a_n, 1)) / (3 * H)
    c_r = tl.where(cmask, a_r - mean[:, None], 0.0)
    c_z = tl.where(cmask, a_z - mean[:, None], 0.0)
    c_n = tl.where(cmask, a_n - mean[:, None], 0.0)
    var = (tl.sum(c_r * c_r, 1) + tl.sum(c_z * c_z, 1) + tl.sum(c_n * c_n, 1)) / (3 * H)
    rstd = 1.0 / tl.sqrt(var + LN_EPS_)
    return c_r * rstd[:, None], c_z * rstd[:, None], c_n * rstd[:, None], rstd


@triton.jit
def _ln_backward(d_r, d_z, d_n, x_r, x_z, x_n, rstd, cmask, H):
    """The gradient through _ln: from the gradients of the normalised values (already
    times the gain) to the raw ones."""
    m1 = (tl.sum(d_r, 1) + tl.sum(d_z, 1) + tl.sum(d_n, 1)) / (3 * H)
    m2 = (tl.sum(d_r * x_r, 1) + tl.sum(d_z * x_z, 1) + tl.sum(d_n * x_n, 1)) / (3 * H)
    g_r = tl.where(cmask, rstd[:, None] * (d_r - m1[:, None] - x_r * m2[:, None]), 0.0)
    g_z = tl.where(cmask, rstd[:, None] * (d_z - m1[:, None] - x_z * m2[:, None]), 0.0)
    g_n = tl.where(cmask, rstd[:, None] * (d_n - m1[:, None] - x_n * m2[:, None]), 0.0)
    return g_r, g_z, g_n


@triton.jit
def _vec(ptr, rh, hmask, H, HAS: tl.constexpr, BH: tl.constexpr):
    """Three (1, BH) blocks r, z, n of a (3H,) vector (bias or gain); zeros when absent."""
    if HAS:
        v_r = tl.load(ptr + rh, mask=hmask, other=0.0).to(tl.float32)[None, :]
        v_z = tl.load(ptr + H + rh, mask=hmask, other=0.0).to(tl.float32)[None, :]
        v_n = tl.load(ptr + 2 * H + rh, mask=hmask, other=0.0).to(tl.float32)[None, :]
    else:
        v_r = tl.zeros((1, BH), tl.float32)
        v_z = v_r
        v_n = v_r
    return v_r, v_z, v_n


@triton.jit
def _tail_forward(r, z, n, h_prev, zone, valid, HAS_ZONE: tl.constexpr):
    """From the gates to the step's output and the state it carries."""
    h_new = (1.0 - z) * n + z * h_prev
    if HAS_ZONE:
        h_new = zone * h_prev + (1.0 - zone) * h_new
    y = tl.where(valid, h_new, 0.0)
    h_out = tl.where(valid, h_new, h_prev)
    return y, h_out


@triton.jit
def _tail_backward(g, dy, r, z, n, h_prev, zone, valid, HAS_ZONE: tl.constexpr):
    """The gradient of _tail_forward: g = dL/dh_out, dy = dL/dy -> dn, dz and the
    direct part of dL/dh_prev."""
    dh = tl.where(valid, g + dy, 0.0)
    direct = tl.where(valid, 0.0, g)
    if HAS_ZONE:
        direct += zone * dh
        dh = (1.0 - zone) * dh
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    direct += dh * z
    return dn, dz, direct


# ------------------------------------------------------------ one step per launch

@triton.jit
def fwd_step(gi, gh, b_hh, ln_hh, h, h_mask, zone, lens, resets,
             y, gates, ghn_s, xhat_s, rstd_s, hprev_s, hin_next,
             t, t_next, B, H,
             RESET_AFTER: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_LN: tl.constexpr,
             HAS_MASK: tl.constexpr, HAS_ZONE: tl.constexpr, HAS_LENS: tl.constexpr,
             HAS_RESETS: tl.constexpr, HAS_NEXT: tl.constexpr, SAVE: tl.constexpr,
             BB: tl.constexpr, BH: tl.constexpr):
    """Step t after its recurrent GEMM. reset_after: gh (B, 3H) = hin W_hh^T. reset
    before: gh (B, H) = (r * hin) W_hn^T, r and z already in ``gates`` (fwd_rz).
    h (B, H) float32 holds the state entering step t (reset applied) and is updated in
    place with the state entering step t_next (its reset applied); hin_next = that
    state times h_mask, the next GEMM's input."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rh = tl.arange(0, BH)
    rmask = rb < B
    hmask = rh < H
    m2 = rmask[:, None] & hmask[None, :]
    row3 = (t * B + rb)[:, None] * (3 * H) + rh[None, :]
    row1 = (t * B + rb)[:, None] * H + rh[None, :]
    cur = rb[:, None] * H + rh[None, :]
    h_prev = tl.load(h + cur, mask=m2, other=0.0)
    i_r = tl.load(gi + row3, mask=m2, other=0.0).to(tl.float32)
    i_z = tl.load(gi + row3 + H, mask=m2, other=0.0).to(tl.float32)
    i_n = tl.load(gi + row3 + 2 * H, mask=m2, other=0.0).to(tl.float32)
    b_r, b_z, b_n = _vec(b_hh, rh, hmask, H, HAS_BIAS, BH)
    if RESET_AFTER:
        g3 = rb[:, None] * (3 * H) + rh[None, :]
        a_r = tl.load(gh + g3, mask=m2, other=0.0).to(tl.float32)
        a_z = tl.load(gh + g3 + H, mask=m2, other=0.0).to(tl.float32)
        a_n = tl.load(gh + g3 + 2 * H, mask=m2, other=0.0).to(tl.float32)
        if HAS_LN:
            x_r, x_z, x_n, rstd = _ln(a_r, a_z, a_n, hmask[None, :], H, 1e-5)
            l_r, l_z, l_n = _vec(ln_hh, rh, hmask, H, True, BH)
            a_r = x_r * l_r
            a_z = x_z * l_z
            a_n = x_n * l_n
            if SAVE:
                tl.store(xhat_s + row3, x_r, mask=m2)
                tl.store(xhat_s + row3 + H, x_z, mask=m2)
                tl.store(xhat_s + row3 + 2 * H, x_n, mask=m2)
                tl.store(rstd_s + t * B + rb, rstd, mask=rmask)
        r = _sigmoid(i_r + a_r + b_r)
        z = _sigmoid(i_z + a_z + b_z)
        ghn = a_n + b_n
        n = _tanh(i_n + r * ghn)
        if SAVE:
            tl.store(ghn_s + row1, ghn, mask=m2)
    else:
        r = tl.load(gates + row3, mask=m2, other=0.0)
        z = tl.load(gates + row3 + H, mask=m2, other=0.0)
        a_n = tl.load(gh + cur, mask=m2, other=0.0).to(tl.float32)
        n = _tanh(i_n + a_n + b_n)
    if SAVE:
        tl.store(gates + row3, r, mask=m2)
        tl.store(gates + row3 + H, z, mask=m2)
        tl.store(gates + row3 + 2 * H, n, mask=m2)
        tl.store(hprev_s + row1, h_prev, mask=m2)
    zo = h_prev
    if HAS_ZONE:
        zo = tl.load(zone + row1, mask=m2, other=0.0).to(tl.float32)
    valid = _row_valid(lens, t, rb, rmask, HAS_LENS)
    y_t, h_out = _tail_forward(r, z, n, h_prev, zo, valid, HAS_ZONE)
    tl.store(y + row1, y_t.to(y.dtype.element_ty), mask=m2)
    if HAS_RESETS and HAS_NEXT:
        h_out = tl.where(_cut(resets, lens, t_next, B, rb, rmask, HAS_LENS), 0.0, h_out)
    tl.store(h + cur, h_out, mask=m2)
    if HAS_NEXT:
        hin = h_out
        if HAS_MASK:
            hin = hin * tl.load(h_mask + cur, mask=m2, other=0.0).to(tl.float32)
        tl.store(hin_next + cur, hin.to(hin_next.dtype.element_ty), mask=m2)


@triton.jit
def fwd_rz(gi, gh, b_hh, h, h_mask, gates, rh_out, t, B, H,
           HAS_BIAS: tl.constexpr, HAS_MASK: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
    """reset_after=False, step t, first half: r and z from gh (B, 2H) = hin W_hrz^T, and
    r * hin, the input of the n GEMM."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rh = tl.arange(0, BH)
    rmask = rb < B
    hmask = rh < H
    m2 = rmask[:, None] & hmask[None, :]
    row3 = (t * B + rb)[:, None] * (3 * H) + rh[None, :]
    cur = rb[:, None] * H + rh[None, :]
    g2 = rb[:, None] * (2 * H) + rh[None, :]
    b_r, b_z, b_n = _vec(b_hh, rh, hmask, H, HAS_BIAS, BH)
    r = _sigmoid(tl.load(gi + row3, mask=m2, other=0.0).to(tl.float32)
                 + tl.load(gh + g2, mask=m2, other=0.0).to(tl.float32) + b_r)
    z = _sigmoid(tl.load(gi + row3 + H, mask=m2, other=0.0).to(tl.float32)
                 + tl.load(gh + g2 + H, mask=m2, other=0.0).to(tl.float32) + b_z)
    tl.store(gates + row3, r, mask=m2)
    tl.store(gates + row3 + H, z, mask=m2)
    hin = tl.load(h + cur, mask=m2, other=0.0)
    if HAS_MASK:
        hin = hin * tl.load(h_mask + cur, mask=m2, other=0.0).to(tl.float32)
    tl.store(rh_out + cur, (r * hin).to(rh_out.dtype.element_ty), mask=m2)


@triton.jit
def bwd_step(dy, g_dir, ghin, h_mask, zone, lens, resets, ln_hh,
             gates, ghn_s, xhat_s, rstd_s, hprev_s,
             dgi, dgh, dgh_post, t, t_next, B, H,
             RESET_AFTER: tl.constexpr, HAS_LN: tl.constexpr, HAS_MASK: tl.constexpr,
             HAS_ZONE: tl.constexpr, HAS_LENS: tl.constexpr, HAS_RESETS: tl.constexpr,
             HAS_NEXT: tl.constexpr, HAS_DY: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
    """The backward of step t. g_dir (B, H) float32 holds on entry the direct part of
    dL/dh_prev of step t_next (the step after t in the forward's order; dL/dh_n when
    there is none), and ghin = that step's dgh W_hh; on exit, step t's direct part.
    Writes dgi[t] and dgh[t], the gradient of the raw recurrent projection (dgh_post[t]
    the gradient after layer norm, for the gain and bias). reset_after=False: dgi's and
    dgh's r parts are written by bwd_r once the n GEMM's gradient is known."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rh = tl.arange(0, BH)
    rmask = rb < B
    hmask = rh < H
    m2 = rmask[:, None] & hmask[None, :]
    row3 = (t * B + rb)[:, None] * (3 * H) + rh[None, :]
    row1 = (t * B + rb)[:, None] * H + rh[None, :]
    cur = rb[:, None] * H + rh[None, :]
    g = tl.load(g_dir + cur, mask=m2, other=0.0)
    if HAS_NEXT:
        gm = tl.load(ghin + cur, mask=m2, other=0.0).to(tl.float32)
        if HAS_MASK:
            gm = gm * tl.load(h_mask + cur, mask=m2, other=0.0).to(tl.float32)
        g = g + gm
        if HAS_RESETS:
            g = tl.where(_cut(resets, lens, t_next, B, rb, rmask, HAS_LENS), 0.0, g)
    if HAS_DY:
        d_y = tl.load(dy + row1, mask=m2, other=0.0).to(tl.float32)
    else:
        d_y = tl.zeros((BB, BH), tl.float32)
    r = tl.load(gates + row3, mask=m2, other=0.0)
    z = tl.load(gates + row3 + H, mask=m2, other=0.0)
    n = tl.load(gates + row3 + 2 * H, mask=m2, other=0.0)
    h_prev = tl.load(hprev_s + row1, mask=m2, other=0.0)
    zo = h_prev
    if HAS_ZONE:
        zo = tl.load(zone + row1, mask=m2, other=0.0).to(tl.float32)
    valid = _row_valid(lens, t, rb, rmask, HAS_LENS)
    dn, dz, direct = _tail_backward(g, d_y, r, z, n, h_prev, zo, valid, HAS_ZONE)
    da_n = dn * (1.0 - n * n)
    da_z = dz * z * (1.0 - z)
    tl.store(g_dir + cur, direct, mask=m2)
    tl.store(dgi + row3 + H, da_z.to(dgi.dtype.element_ty), mask=m2)
    tl.store(dgi + row3 + 2 * H, da_n.to(dgi.dtype.element_ty), mask=m2)
    if RESET_AFTER:
        ghn = tl.load(ghn_s + row1, mask=m2, other=0.0)
        da_r = da_n * ghn * r * (1.0 - r)
        d_ghn = da_n * r
        tl.store(dgi + row3, da_r.to(dgi.dtype.element_ty), mask=m2)
        if HAS_LN:
            tl.store(dgh_post + row3, da_r, mask=m2)
            tl.store(dgh_post + row3 + H, da_z, mask=m2)
            tl.store(dgh_post + row3 + 2 * H, d_ghn, mask=m2)
            x_r = tl.load(xhat_s + row3, mask=m2, other=0.0)
            x_z = tl.load(xhat_s + row3 + H, mask=m2, other=0.0)
            x_n = tl.load(xhat_s + row3 + 2 * H, mask=m2, other=0.0)
            rstd = tl.load(rstd_s + t * B + rb, mask=rmask, other=0.0)
            l_r, l_z, l_n = _vec(ln_hh, rh, hmask, H, True, BH)
            da_r, da_z, d_ghn = _ln_backward(da_r * l_r, da_z * l_z, d_ghn * l_n, x_r, x_z, x_n, rstd,
                                             hmask[None, :], H)
        tl.store(dgh + row3, da_r, mask=m2)
        tl.store(dgh + row3 + H, da_z, mask=m2)
        tl.store(dgh + row3 + 2 * H, d_ghn, mask=m2)
    else:
        tl.store(dgh + row3 + H, da_z, mask=m2)
        tl.store(dgh + row3 + 2 * H, da_n, mask=m2)


@triton.jit
def bwd_r(drh, h_mask, gates, hprev_s, dgi, dgh, extra, t, B, H,
          HAS_MASK: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
    """reset_after=False, the backward of step t, second half: drh = da_n W_hn (the
    gradient of r * hin) gives r's gradient and the part of dL/dhin that flows through
    r * hin (``extra``, added to the next GEMM's result)."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rh = tl.arange(0, BH)
    rmask = rb < B
    hmask = rh < H
    m2 = rmask[:, None] & hmask[None, :]
    row3 = (t * B + rb)[:, None] * (3 * H) + rh[None, :]
    row1 = (t * B + rb)[:, None] * H + rh[None, :]
    cur = rb[:, None] * H + rh[None, :]
    d = tl.load(drh + cur, mask=m2, other=0.0).to(tl.float32)
    r = tl.load(gates + row3, mask=m2, other=0.0)
    hin = tl.load(hprev_s + row1, mask=m2, other=0.0)
    if HAS_MASK:
        hin = hin * tl.load(h_mask + cur, mask=m2, other=0.0).to(tl.float32)
    da_r = d * hin * r * (1.0 - r)
    tl.store(dgi + row3, da_r.to(dgi.dtype.element_ty), mask=m2)
    tl.store(dgh + row3, da_r, mask=m2)
    tl.store(extra + cur, d * r, mask=m2)


# ------------------------------------------------- the persistent kernels (small H)

@triton.jit
def _load_w(w_hh, rh, hmask, H, gate: tl.constexpr):
    """The gate's block of W_hh (3H, H), transposed: (BH, BH) with [k, j] = W[gate*H + j, k]."""
    m = hmask[:, None] & hmask[None, :]
    return tl.load(w_hh + (gate * H + rh[None, :]) * H + rh[:, None], mask=m, other=0.0).to(tl.float32)


@triton.jit
def _load_w_rows(w_hh, rh, hmask, H, gate: tl.constexpr):
    """The gate's block of W_hh as it is: (BH, BH) with [j, k] = W[gate*H + j, k]."""
    m = hmask[:, None] & hmask[None, :]
    return tl.load(w_hh + (gate * H + rh[:, None]) * H + rh[None, :], mask=m, other=0.0).to(tl.float32)


@triton.jit
def fwd_seq(gi, w_hh, b_hh, ln_hh, h, h_mask, zone, lens, resets,
            y, gates, ghn_s, xhat_s, rstd_s, hprev_s, T, B, H,
            REVERSE: tl.constexpr, RESET_AFTER: tl.constexpr, HAS_BIAS: tl.constexpr,
            HAS_LN: tl.constexpr, HAS_MASK: tl.constexpr, HAS_ZONE: tl.constexpr,
            HAS_LENS: tl.constexpr, HAS_RESETS: tl.constexpr, SAVE: tl.constexpr,
            BB: tl.constexpr, BH: tl.constexpr):
    """The whole layer-direction in one launch. h (B, H) float32: h0 in, h_n out."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rh = tl.arange(0, BH)
    rmask = rb < B
    hmask = rh < H
    m2 = rmask[:, None] & hmask[None, :]
    cur = rb[:, None] * H + rh[None, :]
    w_r = _load_w(w_hh, rh, hmask, H, 0)
    w_z = _load_w(w_hh, rh, hmask, H, 1)
    w_n = _load_w(w_hh, rh, hmask, H, 2)
    b_r, b_z, b_n = _vec(b_hh, rh, hmask, H, HAS_BIAS, BH)
    l_r, l_z, l_n = _vec(ln_hh, rh, hmask, H, HAS_LN, BH)
    mask = tl.zeros((BB, BH), tl.float32) + 1.0
    if HAS_MASK:
        mask = tl.load(h_mask + cur, mask=m2, other=0.0).to(tl.float32)
    hs = tl.load(h + cur, mask=m2, other=0.0)
    for s in range(T):
        if REVERSE:
            t = T - 1 - s
        else:
            t = s
        row3 = (t * B + rb)[:, None] * (3 * H) + rh[None, :]
        row1 = (t * B + rb)[:, None] * H + rh[None, :]
        if HAS_RESETS:
            hs = tl.where(_cut(resets, lens, t, B, rb, rmask, HAS_LENS), 0.0, hs)
        hin = hs * mask
        i_r = tl.load(gi + row3, mask=m2, other=0.0).to(tl.float32)
        i_z = tl.load(gi + row3 + H, mask=m2, other=0.0).to(tl.float32)
        i_n = tl.load(gi + row3 + 2 * H, mask=m2, other=0.0).to(tl.float32)
        a_r = tl.dot(hin, w_r, input_precision="ieee")
        a_z = tl.dot(hin, w_z, input_precision="ieee")
        if RESET_AFTER:
            a_n = tl.dot(hin, w_n, input_precision="ieee")
            if HAS_LN:
                x_r, x_z, x_n, rstd = _ln(a_r, a_z, a_n, hmask[None, :], H, 1e-5)
                a_r = x_r * l_r
                a_z = x_z * l_z
                a_n = x_n * l_n
                if SAVE:
                    tl.store(xhat_s + row3, x_r, mask=m2)
                    tl.store(xhat_s + row3 + H, x_z, mask=m2)
                    tl.store(xhat_s + row3 + 2 * H, x_n, mask=m2)
                    tl.store(rstd_s + t * B + rb, rstd, mask=rmask)
            r = _sigmoid(i_r + a_r + b_r)
            z = _sigmoid(i_z + a_z + b_z)
            ghn = a_n + b_n
            n = _tanh(i_n + r * ghn)
            if SAVE:
                tl.store(ghn_s + row1, ghn, mask=m2)
        else:
            r = _sigmoid(i_r + a_r + b_r)
            z = _sigmoid(i_z + a_z + b_z)
            n = _tanh(i_n + tl.dot(r * hin, w_n, input_precision="ieee") + b_n)
        if SAVE:
            tl.store(gates + row3, r, mask=m2)
            tl.store(gates + row3 + H, z, mask=m2)
            tl.store(gates + row3 + 2 * H, n, mask=m2)
            tl.store(hprev_s + row1, hs, mask=m2)
        zo = hs
        if HAS_ZONE:
            zo = tl.load(zone + row1, mask=m2, other=0.0).to(tl.float32)
        valid = _row_valid(lens, t, rb, rmask, HAS_LENS)
        y_t, hs = _tail_forward(r, z, n, hs, zo, valid, HAS_ZONE)
        tl.store(y + row1, y_t.to(y.dtype.element_ty), mask=m2)
    tl.store(h + cur, hs, mask=m2)


@triton.jit
def bwd_seq(dy, g_dir, w_hh, h_mask, zone, lens, resets, ln_hh,
            gates, ghn_s, xhat_s, rstd_s, hprev_s, dgi, dgh, dgh_post, T, B, H,
            REVERSE: tl.constexpr, RESET_AFTER: tl.constexpr, HAS_LN: tl.constexpr,
            HAS_MASK: tl.constexpr, HAS_ZONE: tl.constexpr, HAS_LENS: tl.constexpr,
            HAS_RESETS: tl.constexpr, HAS_DY: tl.constexpr, BB: tl.constexpr, BH: tl.constexpr):
    """The backward of fwd_seq in one launch: g_dir (B, H) float32 holds dL/dh_n on entry
    and dL/dh0 on exit; dgi, dgh, dgh_post as bwd_step writes them, for every step."""
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rh = tl.arange(0, BH)
    rmask = rb < B
    hmask = rh < H
    m2 = rmask[:, None] & hmask[None, :]
    cur = rb[:, None] * H + rh[None, :]
    w_r = _load_w_rows(w_hh, rh, hmask, H, 0)
    w_z = _load_w_rows(w_hh, rh, hmask, H, 1)
    w_n = _load_w_rows(w_hh, rh, hmask, H, 2)
    l_r, l_z, l_n = _vec(ln_hh, rh, hmask, H, HAS_LN, BH)
    mask = tl.zeros((BB, BH), tl.float32) + 1.0
    if HAS_MASK:
        mask = tl.load(h_mask + cur, mask=m2, other=0.0).to(tl.float32)
    g = tl.load(g_dir + cur, mask=m2, other=0.0)
    for s in range(T):
        if REVERSE:
            t = s
        else:
            t = T - 1 - s
        row3 = (t * B + rb)[:, None] * (3 * H) + rh[None, :]
        row1 = (t * B + rb)[:, None] * H + rh[None, :]
        if HAS_DY:
            d_y = tl.load(dy + row1, mask=m2, other=0.0).to(tl.float32)
        else:
            d_y = tl.zeros((BB, BH), tl.float32)
        r = tl.load(gates + row3, mask=m2, other=0.0)
        z = tl.load(gates + row3 + H, mask=m2, other=0.0)
        n = tl.load(gates + row3 + 2 * H, mask=m2, other=0.0)
        h_prev = tl.load(hprev_s + row1, mask=m2, other=0.0)
        zo = h_prev
        if HAS_ZONE:
            zo = tl.load(zone + row1, mask=m2, other=0.0).to(tl.float32)
        valid = _row_valid(lens, t, rb, rmask, HAS_LENS)
        dn, dz, direct = _tail_backward(g, d_y, r, z, n, h_prev, zo, valid, HAS_ZONE)
        da_n = dn * (1.0 - n * n)
        da_z = dz * z * (1.0 - z)
        tl.store(dgi + row3 + H, da_z.to(dgi.dtype.element_ty), mask=m2)
        tl.store(dgi + row3 + 2 * H, da_n.to(dgi.dtype.element_ty), mask=m2)
        if RESET_AFTER:
            ghn = tl.load(ghn_s + row1, mask=m2, other=0.0)
            da_r = da_n * ghn * r * (1.0 - r)
            d_ghn = da_n * r
            tl.store(dgi + row3, da_r.to(dgi.dtype.element_ty), mask=m2)
            if HAS_LN:
                tl.store(dgh_post + row3, da_r, mask=m2)
                tl.store(dgh_post + row3 + H, da_z, mask=m2)
                tl.store(dgh_post + row3 + 2 * H, d_ghn, mask=m2)
                x_r = tl.load(xhat_s + row3, mask=m2, other=0.0)
                x_z = tl.load(xhat_s + row3 + H, mask=m2, other=0.0)
                x_n = tl.load(xhat_s + row3 + 2 * H, mask=m2, other=0.0)
                rstd = tl.load(rstd_s + t * B + rb, mask=rmask, other=0.0)
                da_r, da_z, d_ghn = _ln_backward(da_r * l_r, da_z * l_z, d_ghn * l_n, x_r, x_z, x_n,
                                                 rstd, hmask[None, :], H)
            dhin = (tl.dot(da_r, w_r, input_precision="ieee") + tl.dot(da_z, w_z, input_precision="ieee")
                    + tl.dot(d_ghn, w_n, input_precision="ieee"))
            tl.store(dgh + row3 + 2 * H, d_ghn, mask=m2)
        else:
            hin = h_prev * mask
            d_rh = tl.dot(da_n, w_n, input_precision="ieee")
            da_r = d_rh * hin * r * (1.0 - r)
            tl.store(dgi + row3, da_r.to(dgi.dtype.element_ty), mask=m2)
            dhin = (tl.dot(da_r, w_r, input_precision="ieee") + tl.dot(da_z, w_z, input_precision="ieee")
                    + d_rh * r)
            tl.store(dgh + row3 + 2 * H, da_n, mask=m2)
        tl.store(dgh + row3, da_r, mask=m2)
        tl.store(dgh + row3 + H, da_z, mask=m2)
        g = direct + dhin * mask
        if HAS_RESETS:
            g = tl.where(_cut(resets, lens, t, B, rb, rmask, HAS_LENS), 0.0, g)
    tl.store(g_dir + cur, g, mask=m2)


# ------------------------------------------------------------------- minGRU's scan
# h_t = a_t h_{t-1} + b_t with a = 1 - z, b = z g(v): linear in h, so a stretch of steps
# composes into one (A, S) pair (h_end = A h_start + S). The time axis is cut into
# chunks that run in parallel (program axis 1): pass 1 (mingru_chunk_sums) makes each
# chunk's (A, S) from a zero state, pass 2 (mingru_carry) runs the short scan over the
# chunks for each chunk's starting state, pass 3 (mingru_fwd / mingru_bwd) steps each
# chunk again from its starting state and writes every output. With one chunk, pass 3
# alone is the whole scan (the state entering chunk 0 is h0 itself).


@triton.jit
def _mingru_ab(gates, base, H, m):
    """a = 1 - sigma(k), b = sigma(k) g(v), and what the backward needs, at one step."""
    k = tl.load(gates + base, mask=m, other=0.0).to(tl.float32)
    v = tl.load(gates + base + H, mask=m, other=0.0).to(tl.float32)
    z = _sigmoid(k)
    sv = _sigmoid(v)
    cand = tl.where(v >= 0, v + 0.5, sv)
    return z, cand, sv, v


@triton.jit
def _chunk_program(T, BH, H, CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    """This program's channels c of the (B, H) state (their mask, batch row and unit) and
    its chunk ck of steps: t0 .. t0 + n - 1."""
    c = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ck = tl.program_id(1)
    t0 = ck * CHUNK
    return c, ck, c < BH, c // H, c % H, t0, tl.minimum(T - t0, CHUNK)


@triton.jit
def mingru_chunk_sums(gates, dh, sums, T, BH, H,
                      CHUNK: tl.constexpr, BLOCK: tl.constexpr, BACKWARD: tl.constexpr):
    """Pass 1: each chunk's (A, S) from a zero state into sums (n_chunks, 2, BH).
    Forward: s = (1 - z) s + z g(v) over the chunk's steps; backward: the reversed
    recursion of the gradient, g = (1 - z_t) (g + dh_t) from the chunk's last step."""
    c, ck, m, b, j, t0, n = _chunk_program(T, BH, H, CHUNK, BLOCK)
    s = tl.zeros((BLOCK,), tl.float32)
    a = tl.full((BLOCK,), 1.0, tl.float32)
    for i in range(n):
        if BACKWARD:
            t = t0 + n - 1 - i
        else:
            t = t0 + i
        z, cand, sv, v = _mingru_ab(gates, (t * (BH // H) + b) * (2 * H) + j, H, m)
        if BACKWARD:
            s = (1.0 - z) * (s + tl.load(dh + t * BH + c, mask=m, other=0.0).to(tl.float32))
        else:
            s = (1.0 - z) * s + z * cand
        a = a * (1.0 - z)
    tl.store(sums + (ck * 2) * BH + c, s, mask=m)
    tl.store(sums + (ck * 2 + 1) * BH + c, a, mask=m)


@triton.jit
def mingru_carry(sums, first, starts, NC, BH,
                 BLOCK: tl.constexpr, BACKWARD: tl.constexpr, HAS_FIRST: tl.constexpr):
    """Pass 2: the state entering each chunk, starts (n_chunks, BH): chunk by chunk from
    ``first`` (h0 forward; zero backward, as nothing flows in after the last step),
    state = A state + S."""
    c = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = c < BH
    if HAS_FIRST:
        s = tl.load(first + c, mask=m, other=0.0).to(tl.float32)
    else:
        s = tl.zeros((BLOCK,), tl.float32)
    for i in range(NC):
        ck = NC - 1 - i if BACKWARD else i
        tl.store(starts + ck * BH + c, s, mask=m)
        s = tl.load(sums + (ck * 2 + 1) * BH + c, mask=m, other=0.0) * s \
            + tl.load(sums + (ck * 2) * BH + c, mask=m, other=0.0)


@triton.jit
def mingru_fwd(gates, starts, h, T, BH, H,
               CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    """Pass 3 forward: h_t = (1 - z_t) h_{t-1} + z_t g(v_t), z = sigma(k), for BLOCK
    channels of the (B, H) state and one chunk of steps per program, from the chunk's
    starting state (starts[chunk]; h0 for chunk 0), the state in registers."""
    c, ck, m, b, j, t0, n = _chunk_program(T, BH, H, CHUNK, BLOCK)
    s = tl.load(starts + ck * BH + c, mask=m, other=0.0).to(tl.float32)
    for i in range(n):
        t = t0 + i
        z, cand, sv, v = _mingru_ab(gates, (t * (BH // H) + b) * (2 * H) + j, H, m)
        s = (1.0 - z) * s + z * cand
        tl.store(h + t * BH + c, s.to(h.dtype.element_ty), mask=m)


@triton.jit
def mingru_bwd(dh, gates, h, h0, starts, dgates, dh0, T, BH, H,
               CHUNK: tl.constexpr, BLOCK: tl.constexpr):
    """Pass 3 backward: mingru_fwd's gradient for one chunk per program, its steps
    reversed, from the gradient flowing in from the later chunks (starts[chunk]; zero
    for the last); chunk 0 writes dh0."""
    c, ck, m, b, j, t0, n = _chunk_program(T, BH, H, CHUNK, BLOCK)
    g = tl.load(starts + ck * BH + c, mask=m, other=0.0).to(tl.float32)
    for i in range(n):
        t = t0 + n - 1 - i
        base = (t * (BH // H) + b) * (2 * H) + j
        g += tl.load(dh + t * BH + c, mask=m, other=0.0).to(tl.float32)
        z, cand, sv, v = _mingru_ab(gates, base, H, m)
        if t > 0:
            prev = tl.load(h + (t - 1) * BH + c, mask=m, other=0.0).to(tl.float32)
        else:
            prev = tl.load(h0 + c, mask=m, other=0.0).to(tl.float32)
        dcand = tl.where(v >= 0, 1.0, sv * (1.0 - sv))
        dk = g * (cand - prev) * z * (1.0 - z)
        dv = g * z * dcand
        tl.store(dgates + base, dk.to(dgates.dtype.element_ty), mask=m)
        tl.store(dgates + base + H, dv.to(dgates.dtype.element_ty), mask=m)
        g = g * (1.0 - z)
    if ck == 0:
        tl.store(dh0 + c, g.to(dh0.dtype.element_ty), mask=m)
