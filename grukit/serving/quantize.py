"""Quantised inference: ``gk.quantize(model)`` (int8 weights) and ``dtype=torch.bfloat16``.

int8: every ``gk.GRU`` inside ``model`` becomes a :class:`QuantizedGRU`: its input
and recurrent weights are rounded to int8 per output row, w ~ scale[row] * q with
scale = max|w[row]| / 127, and it runs on the fused CPU engine's int8 kernels
(csrc/int8.cpp, int8.h): with fewer than 4 rows per step, activations (x and the
state) are quantised per row to int16 on the fly, exact int32 sums over blocks of
512, float32 across blocks; from 4 rows on, to 8 bits per row, multiplied with the
weights by VNNI's vpdpbusd where the CPU has it (the same integers through 16 bits
elsewhere), exact int32 sums. Biases stay float32. Inference only. Moved to a GPU
(``.to("cuda")``), a QuantizedGRU keeps its int8 buffers and widens them to float32 for
each call, run by cuDNN or the Triton engine (the int8 model's weights, float32
arithmetic): int8 saves memory there, not time.

bfloat16: the model's weights are cast to bfloat16. Inference calls run every GRU on
the compiled engine (grukit/steps.py: float32 sums, gates and state, outputs in bfloat16;
large layers read bfloat16 weights and widen them in registers, small ones run the
float32 engine on weights widened once), lengths included; calls it does not take
(resets, gradients) run on the reference engine in bfloat16 arithmetic. Sequential
models take float32 inputs and return float32.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

import torch
from torch import Tensor, nn

from .. import _checks, engines, reference
from ..modules import GRU
from ..training.model import Model


def quantize_rows(w: Tensor) -> tuple[Tensor, Tensor]:
    """int8 q and float32 scale (per row) with w ~ scale[:, None] * q."""
    w = w.detach().float()
    scale = w.abs().amax(dim=1) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


class QuantizedGRU(GRU):
    """An inference-only copy of a ``gk.GRU`` with int8 weights (see module docs).

    Takes and returns what the GRU did (float32; batch_first, h0, lengths,
    PackedSequence, unbatched). Buffers per layer-direction: ``weight_ih_l{k}_int8``,
    ``weight_ih_l{k}_scale`` and the same for ``hh``, and the float32 biases.
    """

    def __prepare_scriptable__(self) -> nn.Module:
        raise TypeError("torch.jit.script cannot compile gk.QuantizedGRU (its int8 kernels are grukit's "
                        "own ops, chosen in Python); torch.jit.trace records it (loading the trace needs "
                        "grukit imported)")

    def __init__(self, gru: GRU) -> None:
        if not isinstance(gru, GRU) or isinstance(gru, QuantizedGRU):
            raise TypeError(f"gru must be a float grukit.GRU, got {_checks.describe(gru)}")
        engines.require("int8", engines.options(gru), "gru (int8 quantisation)")
        if gru.weight_ih_l0.device.type == "cpu" and engines.compiled_cpu() is None:
            raise RuntimeError("int8 inference needs grukit's compiled CPU engine, which is not built "
                               "(pip install --no-build-isolation -e .)")
        nn.Module.__init__(self)
        for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                     "bidirectional", "reset_after"):
            setattr(self, name, getattr(gru, name))
        self.engine, self.zoneout, self.recurrent_dropout, self.layer_norm = "cpu", 0.0, 0.0, False
        self.last_engine: Optional[str] = None
        self._weight_names, self._norm_names = [], []
        self.register_buffer("_probe", torch.empty(0), persistent=False)  # dtype and device of inputs
        self._layers: list[tuple[str, ...]] = []
        for names in gru._weight_names:
            stored = []
            for name in names:
                value = getattr(gru, name).detach()
                if name.startswith("weight"):
                    q, scale = quantize_rows(value)
                    self.register_buffer(name + "_int8", q)
                    self.register_buffer(name + "_scale", scale)
                    stored += [name + "_int8", name + "_scale"]
                else:
                    self.register_buffer(name, value.float().clone())
                    stored.append(name)
            self._layers.append(tuple(stored))
        self.train(False)

    def train(self, mode: bool = True) -> "QuantizedGRU":
        if mode:
            raise ValueError("a QuantizedGRU runs inference only: train the float model, then quantize it")
        return super().train(False)

    def _like(self) -> Tensor:
        return self._buffers["_probe"]  # direct: nn.Module.__getattr__ costs microseconds

    def _as_torch_gru(self, resets: Optional[Tensor]) -> bool:
        return False  # its int8 op is what a trace records; torch's GRU has no int8 weights

    def _run_packed(self, data: Tensor, batch_sizes: Tensor, h0: Optional[Tensor]) -> None:
        return None  # a PackedSequence is padded for the int8 op (_run)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", int8"

    def _run(self, x: Tensor, h0: Optional[Tensor], lens: Optional[Tensor],
             resets: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        engines.require("int8", engines.options(self, resets=resets is not None), "this call")
        if x.device.type != "cpu":
            with torch.no_grad():
                return self._dequantized_run(x, h0, lens)
        if engines.compiled_cpu() is None:
            raise RuntimeError("int8 inference on the CPU needs grukit's compiled CPU engine, which is not "
                               "built (pip install --no-build-isolation -e .)")
        self.__dict__["last_engine"] = "cpu-int8"
        b = self._buffers
        weights = [[b[n] for n in names] for names in self._layers]
        lengths = None if lens is None else lens.to("cpu", torch.int64)
        if torch.is_grad_enabled():  # no gradients here: say so to autograd
            with torch.no_grad():
                return self._layers_run(x, h0, weights, lengths)
        return self._layers_run(x, h0, weights, lengths)

    def dequantized_weights(self) -> list[list[Tensor]]:
        """Each layer-direction's weights in float32 (scale * q) and biases, torch's order."""
        b = self._buffers
        out = []
        for names in self._layers:
            ws = [b[n] for n in names]
            wq_ih, s_ih, wq_hh, s_hh, *biases = ws
            out.append([wq_ih.float() * s_ih[:, None], wq_hh.float() * s_hh[:, None], *biases])
        return out

    def _dequantized_run(self, x: Tensor, h0: Optional[Tensor], lens: Optional[Tensor]):
        """Off the CPU (CUDA): the int8 weights widened to float32 (scale * q) for the call,
        run by the engine a float GRU would take there (cuDNN, else Triton, else the
        reference): the int8 model's weights, float32 arithmetic and activations."""
        weights = self.dequantized_weights()
        if h0 is None:
            h0 = x.new_zeros(len(weights), x.shape[1], self.hidden_size)
        engine = engines.resolve("auto", x, engines.options(self), lengths=lens is not None)
        self.__dict__["last_engine"] = engine
        if engine == "cudnn":
            flat = [w.contiguous() for ws in weights for w in ws]
            return engines.cudnn_stack()(x, h0, flat, self.bias, self.num_layers, self.bidirectional, lens,
                                         0.0, False)
        return reference.gru(x, h0, weights, self.num_layers, self.bidirectional,
                             reset_after=self.reset_after, lengths=lens, layer=engines.layer_fn(engine))

    def _layers_run(self, x: Tensor, h0: Optional[Tensor], weights: list, lengths: Optional[Tensor]):
        if len(weights) == 1:  # one layer, one direction: the op alone (streaming calls are short)
            y, h_n = _int8_layer(x, None if h0 is None else h0[0], weights[0], self.reset_after, lengths)
            return y, h_n.unsqueeze(0)
        if h0 is None:
            h0 = x.new_zeros(len(weights), x.shape[1], self.hidden_size)
        return reference.gru(x, h0, weights, self.num_layers, self.bidirectional,
                             reset_after=self.reset_after, lengths=lengths, layer=_int8_layer)


def _int8_layer(x: Tensor, h0: Optional[Tensor], weights: list, reset_after: bool = True,
                lengths: Optional[Tensor] = None, reverse: bool = False) -> tuple[Tensor, Tensor]:
    wq_ih, s_ih, wq_hh, s_hh, *biases = weights
    b_ih, b_hh = biases if biases else (None, None)
    y, h_n = torch.ops.grukit.gru_layer_forward_int8(x, h0, wq_ih, s_ih, wq_hh, s_hh, b_ih, b_hh, lengths,
                                                      reset_after, reverse)
    return y, h_n


def quantize(model: nn.Module, dtype: Any = torch.qint8) -> nn.Module:
    """A quantised copy of ``model`` for inference (the original is left as it is).

    ``dtype=torch.qint8`` (or ``"int8"``): every gk.GRU inside becomes a QuantizedGRU.
    ``dtype=torch.bfloat16`` (or ``"bf16"``): weights and activations in bfloat16.

    Example::

        >>> import torch, grukit as gk
        >>> gru = gk.GRU(8, 16, batch_first=True)
        >>> q = gk.quantize(gru)
        >>> x = torch.randn(2, 5, 8)
        >>> bool((q(x)[0] - gru(x)[0]).abs().max() < 0.02)
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_checks.describe(model)}")
    kinds = {torch.qint8: "int8", "int8": "int8", torch.bfloat16: "bf16", "bf16": "bf16", "bfloat16": "bf16"}
    if dtype not in kinds:
        raise ValueError(f"dtype must be torch.qint8 ('int8') or torch.bfloat16 ('bf16'), got {dtype!r}")
    out = copy.deepcopy(model).eval()
    if kinds[dtype] == "bf16":
        out = out.to(torch.bfloat16)
        for m in out.modules():
            if isinstance(m, GRU):
                m.engine = "auto"  # the step engine for inference (grukit/steps.py), else the reference
            elif isinstance(m, Model):  # Sequential or functional
                m.compute_dtype = torch.bfloat16
        return out
    if isinstance(out, GRU):
        return QuantizedGRU(out)
    found = False
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, GRU) and not isinstance(child, QuantizedGRU):
                setattr(parent, name, QuantizedGRU(child))
                found = True
    if not found:
        raise ValueError(f"model holds no grukit.GRU to quantize ({type(model).__name__})")
    return out
