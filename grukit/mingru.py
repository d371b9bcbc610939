r"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): a GRU whose gates do not
read the previous state, so that training runs in parallel over time.

For each layer and time step::

    z_t  = sigma(W_z x_t + b_z)
    h~_t = g(W_h x_t + b_h),    g(v) = v + 0.5 if v >= 0 else sigma(v)   (g > 0)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

``h_t = a_t h_{t-1} + b_t`` with ``a_t = 1 - z_t`` and ``b_t = z_t h~_t`` is a linear
recurrence, solved for all t at once in log space (a and b are positive)::

    A_t = sum_{s<=t} log a_s
    h_t = exp(A_t) h_0 + exp(A_t + logcumsumexp_{s<=t}(log b_s - A_s))

The scan runs in chunks of ``CHUNK`` steps, each relative to its chunk's start,
and the chunks are joined by their end states; within a chunk |A| stays small,
so float32 keeps its precision on long sequences. This is the reference engine:
plain PyTorch ops, differentiated by autograd, on any device.

The CPU engine (``csrc/mingru.cpp``) computes the same thing in one fused pass
with a hand-written backward: after one matmul for the gates of all steps, every
unit (batch row x hidden index) is independent, so the threads share the units
and each carries its own through time, 8 units to an AVX2 register. On a CPU
that beats any scan over time: it reads each gate once and writes each output
once, where the log-space scan makes a dozen passes over the same memory.

``mode="sequential"`` runs the recurrence step by step (stateful inference);
every mode and engine gives the same outputs.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _checks, engines, reference

CHUNK = 64
MODES = ("auto", "parallel", "sequential")


def log_g(v: Tensor) -> Tensor:
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def log_space_scan(gates: Tensor, h0: Tensor) -> Tensor:
    """The scan of reference.mingru_scan, for all steps at once in log space (see above)."""
    T, B = gates.shape[:2]
    k, v = gates.chunk(2, dim=-1)  # (T, B, H) each
    log_a = -F.softplus(k)  # log(1 - z)
    log_b = -F.softplus(-k) + log_g(v)  # log(z * g(v))
    C = min(CHUNK, T)
    pad = (-T) % C
    if pad:  # pad with steps that keep the state (a = 1, b = 0) and drop them after
        log_a = torch.cat([log_a, log_a.new_zeros(pad, *log_a.shape[1:])])
        log_b = torch.cat([log_b, log_b.new_full((pad, *log_b.shape[1:]), -math.inf)])
    n = log_a.shape[0] // C
    log_a = log_a.view(n, C, *log_a.shape[1:])
    log_b = log_b.view(n, C, *log_b.shape[1:])
    A = log_a.cumsum(1)  # within each chunk
    local = torch.exp(A + torch.logcumsumexp(log_b - A, dim=1))  # each chunk from a zero state
    decay = torch.exp(A)  # what is left of the chunk's start state
    starts = [h0]
    for c in range(n - 1):  # join the chunks: n - 1 small elementwise steps
        starts.append(decay[c, -1] * starts[-1] + local[c, -1])
    h = local + decay * torch.stack(starts)[:, None]
    return h.reshape(n * C, B, -1)[:T]


class _ParallelScan(torch.autograd.Function):
    """log_space_scan with a backward that is exact to every order: the backward of
    logcumsumexp is itself differentiable only where its incoming gradient is nonzero
    (torch computes it from log|grad|), and padded rows and unused steps bring zeros.
    So a graph of the backward (create_graph=True) is built through the step-by-step
    scan instead (reference.through_reference); a first-order backward differentiates
    the log-space scan, recomputed."""

    @staticmethod
    def forward(ctx: Any, gates: Tensor, h0: Tensor) -> Tensor:
        ctx.save_for_backward(gates, h0)
        return log_space_scan(gates, h0)

    @staticmethod
    def backward(ctx: Any, dh: Tensor) -> tuple:
        gates, h0 = ctx.saved_tensors
        scan = reference.mingru_scan if torch.is_grad_enabled() else log_space_scan
        dgates, dh0 = reference.through_reference(lambda g, s: (scan(g, s),), (gates, h0), (dh,))
        return dgates, dh0


def layer_parallel(x: Tensor, weight: Tensor, bias: Optional[Tensor], h0: Tensor) -> Tensor:
    """All steps of one layer at once: x (T, B, I), h0 (B, H) -> outputs (T, B, H)."""
    gates = F.linear(x, weight, bias)
    if engines.transformed() or torch.compiler.is_compiling():  # plain ops for torch.func and compile
        return log_space_scan(gates, h0)
    return _ParallelScan.apply(gates, h0)


def layer_fused(x: Tensor, weight: Tensor, bias: Optional[Tensor], h0: Tensor) -> Tensor:
    """One layer on the CPU engine: one matmul for every step's gates, then the fused scan."""
    return engines.mingru_scan("cpu")(F.linear(x, weight, bias), h0)


def layer_triton(x: Tensor, weight: Tensor, bias: Optional[Tensor], h0: Tensor) -> Tensor:
    """One layer on the Triton engine: one matmul for every step's gates, then the fused scan
    (grukit.gpu.scan)."""
    return engines.mingru_scan("triton")(F.linear(x, weight, bias), h0)


def layer_sequential(x: Tensor, weight: Tensor, bias: Optional[Tensor], h0: Tensor) -> Tensor:
    """The same layer one step at a time."""
    return reference.mingru_scan(F.linear(x, weight, bias), h0)


class MinGRU(nn.Module):
    """A stack of minGRU layers with torch.nn.GRU's calling convention.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first: as for ``gk.GRU``.
        engine: "auto" (the fused CPU engine for float32/float64 on the CPU when it is
            built; the Triton scan on CUDA when Triton is installed), "cpu", "triton", or
            "reference" (the log-space scan in PyTorch ops).
    Inputs: ``input, h0=None, lengths=None, mode="auto"``
        input: (T, B, I), (B, T, I) with batch_first, or (T, I) unbatched.
        h0: (num_layers, B, H) or (num_layers, H) unbatched; zeros when omitted.
        lengths: (B,) ints in [0, T] for a padded batch: outputs past a row's end
            are 0 and its final state is the one at its last real step.
        mode: "parallel" (all steps at once: the engine's scan), "sequential"
            (step by step, in PyTorch ops), or "auto": parallel for sequences
            longer than one step.
    Outputs: ``output, h_n``: the last layer's states (T, B, H) and every layer's
    final state (num_layers, B, H).

    Parameters per layer k: ``weight_l{k}`` (2H, I_k), the rows of W_z then W_h, and
    ``bias_l{k}`` (2H,), initialised uniformly in +-1/sqrt(H) like torch's GRU.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, engine: str = "auto") -> None:
        super().__init__()
        self.engine = _checks.choice("engine", engine, engines.ENGINES)
        self.last_engine: Optional[str] = None
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.num_layers = _checks.positive_int("num_layers", num_layers)
        self.bias = _checks.boolean("bias", bias)
        self.batch_first = _checks.boolean("batch_first", batch_first)
        stdv = 1.0 / math.sqrt(hidden_size)
        for k in range(num_layers):
            w = nn.Parameter(torch.empty(2 * hidden_size, input_size if k == 0 else hidden_size))
            nn.init.uniform_(w, -stdv, stdv)
            self.register_parameter(f"weight_l{k}", w)
            if bias:
                b = nn.Parameter(torch.empty(2 * hidden_size))
                nn.init.uniform_(b, -stdv, stdv)
                self.register_parameter(f"bias_l{k}", b)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}")

    def __prepare_scriptable__(self) -> nn.Module:
        raise TypeError("torch.jit.script cannot compile gk.MinGRU (its scan engine is chosen in Python); "
                        "torch.jit.trace, torch.export and torch.compile record it (a saved trace loads "
                        "with grukit imported)")

    def forward(self, input: Tensor, h0: Optional[Tensor] = None, lengths: Any = None,
                mode: str = "auto") -> tuple[Tensor, Tensor]:
        mode = _checks.choice("mode", mode, MODES)
        ref = self.weight_l0
        _checks.tensor("input", input)
        if input.dim() not in (2, 3):
            raise _checks.InputError("input must be 3-D, (T, B, I) or (B, T, I) with batch_first, or 2-D "
                                     f"(T, I) for one unbatched sequence; got shape {tuple(input.shape)}")
        if not input.dtype.is_floating_point:
            raise _checks.InputDTypeError(f"input must be a floating-point tensor of dtype {ref.dtype}, "
                                          f"got {input.dtype}")
        _checks.like_parameters("input", input, ref)
        if input.shape[-1] != self.input_size:
            raise _checks.InputError(f"input must have {self.input_size} features (input_size), "
                             f"got {input.shape[-1]}")
        unbatched = input.dim() == 2
        x = input[:, None] if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        T, B = x.shape[:2]
        L, H = self.num_layers, self.hidden_size
        if h0 is not None:
            expected = (L, H) if unbatched else (L, B, H)
            _checks.optional_h("h0", h0, expected, ref, "(num_layers, B, H)" if not unbatched
                               else "(num_layers, H) for an unbatched input")
            h0 = h0[:, None] if unbatched else h0
        else:
            h0 = x.new_zeros(L, B, H)
        if T == 0:
            raise _checks.InputError("input must have at least one time step")
        if B == 0:
            raise _checks.InputError(
                f"input must have at least one batch row, got shape {tuple(input.shape)}")
        if lengths is not None:
            if unbatched:
                raise ValueError("lengths must be None for an unbatched (T, I) input")
            lengths = _checks.lengths(lengths, B, T, x.device)
        if mode == "sequential" or (mode == "auto" and T == 1):
            run, self.last_engine = layer_sequential, "sequential"
        else:
            # on CUDA the scan is Triton's ("cudnn" has no minGRU)
            requested = "triton" if x.is_cuda and self.engine in ("auto", "cudnn") else self.engine
            self.last_engine = engines.resolve(requested, x)
            run = {"cpu": layer_fused, "triton": layer_triton}.get(self.last_engine, layer_parallel)
        finals = []
        if lengths is not None:  # (T, B, 1): True at a row's real steps
            real = (torch.arange(T, device=x.device)[:, None] < lengths[None, :])[..., None]
            last = (lengths - 1).clamp(min=0)[None, :, None].expand(1, B, H)
        for k in range(L):
            x = run(x, getattr(self, f"weight_l{k}"), getattr(self, f"bias_l{k}", None), h0[k])
            if lengths is None:
                finals.append(x[-1])
            else:  # the state at each row's last real step (h0 for an empty row); zeros after it
                finals.append(torch.where(lengths[:, None] > 0, x.gather(0, last)[0], h0[k]))
                x = x * real
        h_n = torch.stack(finals)
        if unbatched:
            return x[:, 0], h_n[:, 0]
        return (x.transpose(0, 1) if self.batch_first else x), h_n
