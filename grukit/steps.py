"""The compiled step engine's Python side (csrc/stream.cpp's StreamCore): a model's
layers as a plan of (kind, tensors) items, a core made from a plan, and bfloat16 GRU
inference on it.

A plan item is ("embedding", {table}), ("gru", {w_ih, w_hh, b_ih, b_hh, reset_after,
gamma_ih, gamma_hh, zoneout, s_ih, s_hh}), ("mingru", {w, b}) or ("dense", {w, b,
activation}); weights in float32, bfloat16, or int8 with row scales s_*. gk.stream
(serving/stream.py) builds plans of whole models on top of these.

bfloat16 inference (engine "cpu-bf16", for ``gk.quantize(model, torch.bfloat16)``): a GRU
whose weights are bfloat16 runs each layer-direction through a StreamCore over all its
steps in one call: the weights stay bfloat16 in memory (half of float32's bytes, which is
what a step that reads large weights is bound by), each is widened to float32 in
registers, and the sums, the gates and the state are float32. Between layers the
activations are float32; the outputs are cast to bfloat16 at the end. Inference only (no
gradients, no ``resets``): other calls run on the reference engine in bfloat16
arithmetic. ``lengths`` are taken as the sequence engine takes them (a reverse direction
starts at each row's own last step). The cores (packed weights and their buffers) are
kept per module and batch size, and made again when a weight changes (its version
counter or storage), per thread.

Small layers are the exception: where a layer-direction's recurrent weights in float32
fit in one core's L2 cache (WIDEN_MAX_BYTES, 1 MiB: H <= 295), reading them does not
bound a step, so halving their bytes gains nothing and widening each one as it is used
costs instructions; and the float32 sequence engine keeps its threads in one parallel
region for the whole sequence where the step engine shares out each step's product.
There the GRU runs on the float32 engine with its weights widened once (a float32 copy
of the module, kept while its weights are unchanged; at most 1 MiB per layer-direction
of recurrent weights), and the outputs are rounded to bfloat16 the same way.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any, Optional

import torch
from torch import Tensor, nn

from . import engines

ACTIVATION_CODES = {None: 0, "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "softmax": 4, "gelu": 5,
                    "elu": 6, "softplus": 7, "selu": 8}


def gru_plan(m: nn.Module, directions: bool = False) -> list[tuple[str, dict]]:
    """A float32 or bfloat16 gk.GRU's plan: one item per layer, or per layer-direction (the
    reverse one second) with ``directions``."""
    if m.bidirectional and not directions:
        raise ValueError("a bidirectional GRU runs forward in time only per direction")
    out = []
    p = dict(m.named_parameters())
    gains = m._norm_names if m.layer_norm else [(None, None)] * len(m._weight_names)
    for names, (g_ih, g_hh) in zip(m._weight_names, gains, strict=True):
        w_ih, w_hh, *bias = (p[n].detach() for n in names)
        out.append(("gru", {"w_ih": w_ih, "w_hh": w_hh, "b_ih": bias[0] if bias else None,
                            "b_hh": bias[1] if bias else None, "reset_after": m.reset_after,
                            "gamma_ih": None if g_ih is None else p[g_ih].detach(),
                            "gamma_hh": None if g_hh is None else p[g_hh].detach(),
                            "zoneout": float(m.zoneout), "s_ih": None, "s_hh": None}))
    return out


def compiled_core(compiled: Any, plan: list, batch: int) -> Any:
    """A StreamCore running ``plan`` (a list of (kind, tensors)) for ``batch`` rows."""
    core = compiled.StreamCore(batch)
    for kind, spec in plan:
        if kind == "embedding":
            core.add_embedding(spec["table"])
        elif kind == "gru":
            core.add_gru(spec["w_ih"], spec["w_hh"], spec["b_ih"], spec["b_hh"], spec["reset_after"],
                         spec["gamma_ih"], spec["gamma_hh"], spec["zoneout"], spec["s_ih"], spec["s_hh"])
        elif kind == "mingru":
            core.add_mingru(spec["w"], None if spec["b"] is None else spec["b"].detach())
        else:
            core.add_dense(spec["w"], spec["b"], ACTIVATION_CODES[spec["activation"]])
    core.finish()
    return core


# Per thread (a core holds the state it steps: two threads calling one module at once
# must not share one): module -> {batch: (key, cores)}
_local = threading.local()
MAX_BATCH_SIZES = 4  # cores kept per module and thread


def _key(gru: torch.nn.Module) -> tuple:
    params = gru.parameters() if gru._modules else gru._parameters.values()  # the latter: no generator chain
    return tuple((p.data_ptr(), p._version) for p in params if p is not None)


# float32 recurrent weights per layer-direction up to this many bytes: the float32 engine
# on widened weights (see above); tests set 0 to keep every size on the step engine
WIDEN_MAX_BYTES = 1 << 20
_widened: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()
_widened_lock = threading.Lock()


def widens(gru: torch.nn.Module) -> bool:
    """Whether this bfloat16 GRU runs on the float32 engine with widened weights."""
    return 3 * gru.hidden_size * gru.hidden_size * 4 <= WIDEN_MAX_BYTES


def _float_copy(gru: torch.nn.Module) -> tuple[torch.nn.Module, list[Tensor]]:
    """The module with its weights widened to float32, and those weights flat."""
    key = _key(gru)
    found = _widened.get(gru)
    if found is not None and found[0] == key:
        return found[1]
    with _widened_lock:
        wide = copy.deepcopy(gru).float()
        _widened[gru] = (key, (wide, [w for ws in wide.all_weights for w in ws]))
    return _widened[gru][1]


def _layer_cores(gru: torch.nn.Module, batch: int) -> list:
    if not hasattr(_local, "cores"):
        _local.cores = weakref.WeakKeyDictionary()
    per_module = _local.cores.setdefault(gru, {})
    key = _key(gru)
    found = per_module.get(batch)
    if found is not None and found[0] == key:
        return found[1]
    compiled = engines.compiled_cpu()
    cores = []
    for item in gru_plan(gru, directions=True):
        core = compiled_core(compiled, [item], batch)
        cores.append((core, core.state_views()[0]))
    if batch not in per_module and len(per_module) >= MAX_BATCH_SIZES:
        per_module.pop(next(iter(per_module)))
    per_module[batch] = (key, cores)
    return cores


def _reversal(lengths: Optional[Tensor], T: int, B: int) -> Optional[Tensor]:
    """Time indices (T, B) that reverse each row's first lengths[b] steps (and keep the
    rest): a reverse direction starts at each row's own last step."""
    if lengths is None:
        return None
    t = torch.arange(T)[:, None].expand(T, B)
    n = lengths.cpu()[None, :]
    return torch.where(t < n, n - 1 - t, t)


def _reverse(x: Tensor, index: Optional[Tensor]) -> Tensor:
    if index is None:
        return x.flip(0)
    return x.gather(0, index[..., None].expand_as(x))


def gru_stack(gru: torch.nn.Module, x: Tensor, h0: Tensor,
              lengths: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """x (T, B, I), h0 (L*D, B, H), bfloat16, lengths (B,) or None -> output (T, B, D*H),
    h_n (L*D, B, H), bfloat16; past a row's length its outputs are 0 and its state stays."""
    if widens(gru):  # the float32 engine, the weights widened once
        wide, flat = _float_copy(gru)
        if wide.training != gru.training:
            wide.train(gru.training)
        if engines.supports("cpu-stack", engines.options(gru, gru.training)):  # as a float32 GRU's inference
            # (bfloat16 in and out: the op converts, cheaper than four conversions from Python)
            return engines.stack_inference()(x, h0, flat, gru.bias, gru.num_layers, gru.bidirectional,
                                             lengths, gru.reset_after)
        y, h_n = wide._run(x.float(), h0.float(), lengths)
        return y.to(torch.bfloat16), h_n.to(torch.bfloat16)
    D = 2 if gru.bidirectional else 1
    T, B = x.shape[:2]
    cores = _layer_cores(gru, B)
    index = _reversal(lengths, T, B) if D == 2 else None
    inp, finals = x, []
    for layer in range(gru.num_layers):  # the caller made sure that no gradient is wanted
        outs = []
        for d in range(D):
            core, state = cores[layer * D + d]
            state.copy_(h0[layer * D + d])
            y = core.run(inp if d == 0 else _reverse(inp, index), lengths)
            outs.append(y if d == 0 else _reverse(y, index))
            finals.append(state.clone())
        inp = outs[0] if D == 1 else torch.cat(outs, 2)
    return inp.to(torch.bfloat16), torch.stack(finals).to(torch.bfloat16)
