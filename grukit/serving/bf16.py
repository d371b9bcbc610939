"""bfloat16 inference on the compiled step engine (``gk.quantize(model, torch.bfloat16)``).

A GRU whose weights are bfloat16 runs each layer-direction through a StreamCore
(csrc/stream.cpp) over all its steps in one call: the weights stay bfloat16 in memory
(half of float32's bytes, which is what a step that reads large weights is bound by),
each is widened to float32 in registers, and the sums, the gates and the state are
float32. Between layers the activations are float32; the outputs are cast to bfloat16
at the end. Inference only (no gradients, no ``lengths``/``resets``): other calls run
on the reference engine in bfloat16 arithmetic.

The cores (packed weights and their buffers) are kept per module and batch size, and
made again when a weight changes (its version counter or storage).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from .. import engines
from . import stream as _stream

_cores: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # module -> {batch: (key, cores)}
MAX_BATCH_SIZES = 4  # cores kept per module


def _key(gru: torch.nn.Module) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in gru.parameters())


def _layer_cores(gru: torch.nn.Module, batch: int) -> list:
    per_module = _cores.setdefault(gru, {})
    key = _key(gru)
    found = per_module.get(batch)
    if found is not None and found[0] == key:
        return found[1]
    compiled = engines.compiled_cpu()
    cores = []
    for item in _stream._module_plan(gru, batch, "gru", directions=True):
        core = _stream._compiled_core(compiled, [item], batch)
        cores.append((core, core.state_views()[0]))
    if batch not in per_module and len(per_module) >= MAX_BATCH_SIZES:
        per_module.pop(next(iter(per_module)))
    per_module[batch] = (key, cores)
    return cores


def gru_stack(gru: torch.nn.Module, x: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """x (T, B, I), h0 (L*D, B, H), bfloat16 -> output (T, B, D*H), h_n (L*D, B, H), bfloat16."""
    D = 2 if gru.bidirectional else 1
    cores = _layer_cores(gru, x.shape[1])
    inp, finals = x, []
    for layer in range(gru.num_layers):  # the caller made sure that no gradient is wanted
        outs = []
        for d in range(D):
            core, state = cores[layer * D + d]
            state.copy_(h0[layer * D + d])
            y = core.run(inp if d == 0 else inp.flip(0))
            outs.append(y if d == 0 else y.flip(0))
            finals.append(state.clone())
        inp = outs[0] if D == 1 else torch.cat(outs, 2)
    return inp.to(torch.bfloat16), torch.stack(finals).to(torch.bfloat16)
