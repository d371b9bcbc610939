"""minGRU's scan on the Triton engine: ``grukit::triton_mingru_scan`` (forward) and its
hand-written backward, the same function as reference.mingru_scan.

The scan is elementwise over the (B, H) state, so each program takes BLOCK channels
and runs the whole time loop with the state in registers (the fused recurrent form of
flash-linear-attention's HGRN kernels): one launch, each gate read once and each
output written once; the backward runs the loop reversed. Arithmetic in float32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import reference
from . import kernels

BLOCK = 128


def _grid(BH: int) -> tuple[int]:
    return (-(-BH // BLOCK),)


@torch.library.custom_op("grukit::triton_mingru_scan", mutates_args=())
def mingru_scan(gates: Tensor, h0: Tensor) -> Tensor:
    """h (T, B, H) from the gates [k | v] (T, B, 2H) and h0 (B, H)."""
    T, B, H2 = gates.shape
    H = H2 // 2
    h = torch.empty(T, B, H, device=gates.device, dtype=gates.dtype)
    kernels.mingru_fwd[_grid(B * H)](gates.contiguous(), h0.contiguous(), h, T, B * H, H, BLOCK=BLOCK)
    return h


@mingru_scan.register_fake
def _scan_fake(gates, h0):
    return gates.new_empty(gates.shape[0], gates.shape[1], h0.shape[1])


@torch.library.custom_op("grukit::triton_mingru_scan_backward", mutates_args=())
def mingru_scan_backward(dh: Tensor, gates: Tensor, h: Tensor, h0: Tensor) -> list[Tensor]:
    T, B, H2 = gates.shape
    H = H2 // 2
    dgates = torch.empty_like(gates)
    dh0 = torch.empty_like(h0)
    kernels.mingru_bwd[_grid(B * H)](dh.contiguous(), gates.contiguous(), h.contiguous(), h0.contiguous(),
                                     dgates, dh0, T, B * H, H, BLOCK=BLOCK)
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
