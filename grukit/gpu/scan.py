"""minGRU's scan on the Triton engine: ``grukit::triton_mingru_scan`` (forward) and its
hand-written backward, the same function as reference.mingru_scan.

The scan is elementwise over the (B, H) state and linear in it (h_t = a_t h_{t-1} + b_t),
so it parallelises over channels and over time. Each program takes BLOCK channels and
one chunk of steps, the state in registers (the chunked form of flash-linear-attention's
HGRN kernels): pass 1 makes each chunk's affine map from a zero state, pass 2 scans
those maps over the chunks for each chunk's starting state, pass 3 steps each chunk
again from it and writes the outputs (kernels.py). Where the channels alone give the GPU
enough programs, or the sequence is short, there is one chunk and pass 3 alone runs
(each gate read once, each output written once). The backward is the same three passes
with time reversed. Arithmetic in float32.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import Tensor

from .. import reference
from . import kernels

BLOCK = 128
# chunks are cut until the launch has about this many programs (an H100/H200 has 132
# SMs; a few programs per SM hide the latency of each step's loads)
PROGRAMS = 1024
MIN_CHUNK = 32
# a fixed chunk length, for tests (None: chosen by chunk())
FORCE_CHUNK: Optional[int] = int(os.environ["GRUKIT_MINGRU_CHUNK"]) if "GRUKIT_MINGRU_CHUNK" in os.environ \
    else None


def chunk(T: int, BH: int) -> int:
    """The steps per chunk: T (one chunk) when the channels fill the GPU or T is short."""
    if FORCE_CHUNK is not None:
        return max(1, min(FORCE_CHUNK, T))
    blocks = -(-BH // BLOCK)
    want = -(-PROGRAMS // blocks)  # chunks wanted
    n = min(want, T // MIN_CHUNK)
    return T if n <= 1 else -(-T // n)


def _starts(gates: Tensor, dh: Optional[Tensor], first: Optional[Tensor], C: int, backward: bool) -> Tensor:
    """Passes 1 and 2: the state (forward) or gradient (backward) entering each chunk."""
    T, B, H2 = gates.shape
    BH = B * H2 // 2
    NC = -(-T // C)
    blocks = -(-BH // BLOCK)
    if NC == 1 and first is not None:
        return first
    starts = torch.zeros(NC, BH, device=gates.device, dtype=torch.float32)
    if NC == 1:
        return starts
    sums = torch.empty(NC, 2, BH, device=gates.device, dtype=torch.float32)
    kernels.mingru_chunk_sums[(blocks, NC)](gates, sums if dh is None else dh, sums, T, BH, H2 // 2,
                                            CHUNK=C, BLOCK=BLOCK, BACKWARD=backward)
    kernels.mingru_carry[(blocks,)](sums, sums if first is None else first, starts, NC, BH,
                                    BLOCK=BLOCK, BACKWARD=backward, HAS_FIRST=first is not None)
    return starts


@torch.library.custom_op("grukit::triton_mingru_scan", mutates_args=())
def mingru_scan(gates: Tensor, h0: Tensor) -> Tensor:
    """h (T, B, H) from the gates [k | v] (T, B, 2H) and h0 (B, H)."""
    T, B, H2 = gates.shape
    H = H2 // 2
    gates, h0 = gates.contiguous(), h0.contiguous()
    h = torch.empty(T, B, H, device=gates.device, dtype=gates.dtype)
    C = chunk(T, B * H)
    starts = _starts(gates, None, h0, C, backward=False)
    kernels.mingru_fwd[(-(-B * H // BLOCK), -(-T // C))](gates, starts, h, T, B * H, H, CHUNK=C, BLOCK=BLOCK)
    return h


@mingru_scan.register_fake
def _scan_fake(gates, h0):
    return gates.new_empty(gates.shape[0], gates.shape[1], h0.shape[1])


@torch.library.custom_op("grukit::triton_mingru_scan_backward", mutates_args=())
def mingru_scan_backward(dh: Tensor, gates: Tensor, h: Tensor, h0: Tensor) -> list[Tensor]:
    T, B, H2 = gates.shape
    H = H2 // 2
    dh, gates, h, h0 = dh.contiguous(), gates.contiguous(), h.contiguous(), h0.contiguous()
    dgates = torch.empty_like(gates)
    dh0 = torch.empty_like(h0)
    C = chunk(T, B * H)
    starts = _starts(gates, dh, None, C, backward=True)
    kernels.mingru_bwd[(-(-B * H // BLOCK), -(-T // C))](dh, gates, h, h0, starts, dgates, dh0, T, B * H, H,
                                                         CHUNK=C, BLOCK=BLOCK)
    return [dgates, dh0]


@mingru_scan_backward.register_fake
def _scan_backward_fake(dh, gates, h, h0):
    return [torch.empty_like(gates), torch.empty_like(h0)]


def _setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
    gates, h0 = inputs
    ctx.save_for_backward(gates, output, h0)


def _backward(ctx: Any, dh: Tensor) -> tuple:
    gates, h, h0 = ctx.saved_tensors
    if torch.is_grad_enabled() or reference.batched(dh):  # see reference.through_reference
        dgates, dh0 = reference.through_reference(lambda g, s: (reference.mingru_scan(g, s),), (gates, h0),
                                                  (dh,))
        return dgates, dh0
    dgates, dh0 = mingru_scan_backward(dh, gates, h, h0)
    return dgates, dh0


mingru_scan.register_autograd(_backward, setup_context=_setup_context)
