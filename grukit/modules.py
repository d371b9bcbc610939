"""GRUCell and GRU: torch.nn's names, layout and initialisation, both reset conventions."""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import _checks, engines, reference, scripting
from .reference import LayerWeights

GRUInput = Union[Tensor, PackedSequence]


def _init_uniform(module: nn.Module, hidden_size: int) -> None:
    # torch.nn.GRU's initialisation, in its parameter order, so that the same
    # seed gives the same weights as torch.
    stdv = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for weight in module.parameters():
        nn.init.uniform_(weight, -stdv, stdv)


def _read_weight(module: nn.Module, name: str) -> Optional[Tensor]:
    """A weight of ``module`` read directly: nn.Module.__getattr__ costs about half a microsecond a
    name. One that torch.nn.utils.prune or a parametrization (weight_norm, spectral_norm) has taken
    out of _parameters is read as the attribute it computes (None for a registered None bias)."""
    p = module._parameters.get(name)
    return p if p is not None else getattr(module, name)


def _onnx_exporting() -> bool:
    """Whether torch.onnx.export is recording the call. Its torch.export-based exporter falls
    back to a strict (dynamo) capture in which torch.onnx.is_in_onnx_export() reads False, so
    the flag it sets is read too where this torch has it. Both exporters trace or compile, so
    an eager call is answered by those two cheap checks (is_in_onnx_export costs about 1 us)."""
    if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
        return False
    if torch.onnx.is_in_onnx_export():
        return True
    flags = sys.modules.get("torch.onnx._internal.exporter._flags")
    return bool(getattr(flags, "_is_onnx_exporting", False))


class GRU(nn.Module):
    r"""A multi-layer gated recurrent unit, a drop-in for ``torch.nn.GRU``.

    For each element of the input sequence, each layer computes::

        r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))   reset_after=True
        n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)   reset_after=False
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    where h_t is the hidden state at time t, x_t the input at time t (for layers
    after the first, the previous layer's output, with dropout in training when
    ``dropout > 0``), h_{t-1} the state at t-1 or h0 at t=0, r_t, z_t, n_t the
    reset, update and new gates, sigma the sigmoid and * the elementwise product.

    Args:
        input_size: I, the number of features of x.
        hidden_size: H, the number of features of h.
        num_layers: L, stacked layers. Default 1.
        bias: use b_ih and b_hh. Default True.
        batch_first: input and output are (B, T, *) instead of (T, B, *). h0 and
            h_n stay (L*D, B, H), as in torch.
        dropout: dropout on the outputs of every layer but the last, in training.
        bidirectional: D = 2 when True, else 1.
        reset_after: apply the reset gate after the recurrent matmul (True, torch's
            and Keras' default) or before it (False, Cho et al. 2014).
        engine: "auto", "reference", "cpu", "cudnn" or "triton" (see ``gk.engine_info()``
            and docs/gpu.md). "auto" runs the fused CPU engine on the CPU and, on CUDA,
            torch's cuDNN GRU where it computes the call, else the Triton kernels.
        zoneout: the probability that a unit keeps its previous state at a step
            (Krueger et al. 2016), drawn afresh per step, unit, row, layer and
            direction in training; at inference each unit keeps that share of its
            previous state. 0 (the default) is a plain GRU.
        recurrent_dropout: in training, drop units of the state that feeds the
            recurrent matmul, with one mask per sequence (Keras' recurrent_dropout;
            Gal and Ghahramani 2016); the state carried forward is not masked.
        layer_norm: normalise each step's input projection W_i x_t and recurrent
            projection W_h h_{t-1} over their 3H values, separately, before their
            biases (Ba et al. 2016; Haste's LayerNormGRU), with learned gains
            ``layer_norm_ih_l{k}`` and ``layer_norm_hh_l{k}`` (3H, initialised to 1);
            the biases act as the shifts. Needs reset_after=True.

    Inputs: ``input, h0=None, lengths=None``, and by keyword ``hx=`` (torch's name for h0) and ``resets=``
        input: (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a
            PackedSequence (then the output is a PackedSequence too).
        h0: (L*D, B, H), or (L*D, H) unbatched; zeros when omitted.
        lengths: (B,) ints in [0, T] for a padded batch: outputs past a row's
            length are 0 and h_n holds each row's state at its last valid step.
        resets: (T, B) bool (time-major even with batch_first; (T,) unbatched):
            where set, that row's state is zeroed before step t, as at an episode
            boundary inside a rollout; no gradient crosses it. One direction only.

    Outputs: ``output, h_n``
        output: (T, B, D*H) (or (B, T, D*H), (T, D*H)): the last layer's h_t.
        h_n: (L*D, B, H): the final state of every layer and direction.

    Attributes: ``weight_ih_l{k}`` (3H, I) for k=0 else (3H, D*H), ``weight_hh_l{k}``
    (3H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3H), rows in gate order r, z, n,
    ``_reverse`` suffixed for the backward direction; initialised from
    U(-1/sqrt(H), 1/sqrt(H)) exactly as torch does.

    Example::

        >>> import torch, grukit as gk
        >>> gru = gk.GRU(8, 16, num_layers=2, batch_first=True)
        >>> out, h_n = gru(torch.randn(4, 10, 8))
        >>> tuple(out.shape), tuple(h_n.shape)
        ((4, 10, 16), (2, 4, 16))
    """

    mode = "GRU"  # torch.nn.GRU's own constants, which code written for torch's RNNs reads
    proj_size = 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        reset_after: bool = True,
        engine: str = "auto",
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.num_layers = _checks.positive_int("num_layers", num_layers)
        self.bias = _checks.boolean("bias", bias)
        self.batch_first = _checks.boolean("batch_first", batch_first)
        self.dropout = _checks.probability("dropout", dropout)
        self.bidirectional = _checks.boolean("bidirectional", bidirectional)
        self.reset_after = _checks.boolean("reset_after", reset_after)
        self.engine = _checks.choice("engine", engine, engines.ENGINES)
        self.zoneout = _checks.probability("zoneout", zoneout)
        self.recurrent_dropout = _checks.probability("recurrent_dropout", recurrent_dropout)
        if self.recurrent_dropout == 1.0:
            raise ValueError("recurrent_dropout must be below 1 (1 would drop the whole state), got 1.0")
        self.layer_norm = _checks.boolean("layer_norm", layer_norm)
        if self.layer_norm and not self.reset_after:
            raise ValueError("layer_norm=True needs reset_after=True: the recurrent projection is "
                             "normalised whole, before the reset gate; got reset_after=False")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout acts between layers, so dropout > 0 with num_layers=1 has no "
                f"effect (dropout={self.dropout}, num_layers=1)",
                UserWarning,
                stacklevel=2,
            )
        self.last_engine: Optional[str] = None  # which engine ran the last call

        D = 2 if self.bidirectional else 1
        H = self.hidden_size
        factory = {"device": device, "dtype": dtype}
        self._weight_names: list[tuple[str, ...]] = []
        self._norm_names: list[tuple[str, str]] = []  # per layer-direction, with layer_norm
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else D * H
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (3 * H, layer_in), "weight_hh": (3 * H, H)}
                if self.bias:
                    shapes.update(bias_ih=(3 * H,), bias_hh=(3 * H,))
                names = []
                for stem, shp in shapes.items():
                    self.register_parameter(stem + sfx, nn.Parameter(torch.empty(shp, **factory)))
                    names.append(stem + sfx)
                self._weight_names.append(tuple(names))
                if self.layer_norm:
                    gains = ("layer_norm_ih" + sfx, "layer_norm_hh" + sfx)
                    for name in gains:
                        self.register_parameter(name, nn.Parameter(torch.empty(3 * H, **factory)))
                    self._norm_names.append(gains)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the weights draw in torch's order (the same seed gives torch's weights);
        # layer-norm gains start at 1
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in (w for ws in self.all_weights for w in ws):
            nn.init.uniform_(weight, -stdv, stdv)
        for gain in (g for gs in self._layer_norm_gains() or () for g in gs):
            nn.init.ones_(gain)

    def flatten_parameters(self) -> None:
        """On CUDA, make the weights views of one buffer in cuDNN's layout, as
        torch.nn.GRU does (so that cuDNN does not copy them per call); a no-op elsewhere.
        Called after every ``.to()``/``.cuda()``, as in torch."""
        from .gpu import cudnn

        cudnn.flatten([w for ws in self.all_weights for w in ws], self.bias, self.input_size,
                      self.hidden_size, self.num_layers, self.bidirectional)

    def _apply(self, fn: Any, recurse: bool = True) -> "GRU":
        out = super()._apply(fn, recurse)
        self.flatten_parameters()
        return out

    @property
    def all_weights(self) -> list[list[Tensor]]:
        return [[_read_weight(self, n) for n in names] for names in self._weight_names]

    def _layer_norm_gains(self) -> Optional[list[tuple[Tensor, Tensor]]]:
        """Per layer-direction (ln_ih, ln_hh) with layer_norm, else None."""
        if not self.layer_norm:
            return None
        return [(_read_weight(self, a), _read_weight(self, b)) for a, b in self._norm_names]

    def _layer_weights(self) -> list[LayerWeights]:
        """Per layer-direction (w_ih, w_hh, b_ih, b_hh), biases None without bias."""
        return [(ws[0], ws[1], ws[2], ws[3]) if self.bias else (ws[0], ws[1], None, None)
                for ws in self.all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0,
                        bidirectional=False, reset_after=True, engine="auto", zoneout=0.0,
                        recurrent_dropout=0.0, layer_norm=False)
        for k, v in defaults.items():
            if getattr(self, k) != v:
                s += f", {k}={getattr(self, k)!r}"
        return s

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        input: GRUInput,
        h0: Optional[Tensor] = None,
        lengths: Optional[object] = None,
        hx: Optional[Tensor] = None,  # torch's name for h0; not keyword-only, which the legacy
        # torch.onnx.export cannot call (it passes every parameter's default by position)
        resets: Optional[Tensor] = None,
    ) -> tuple[GRUInput, Tensor]:
        if hx is not None:
            if h0 is not None:
                raise TypeError("pass the initial state as h0 or hx, not both")
            h0 = hx
        ref = self._like()
        D = 2 if self.bidirectional else 1
        LD, H = self.num_layers * D, self.hidden_size

        if isinstance(input, PackedSequence):
            if resets is not None:
                raise ValueError("resets must be None when input is a PackedSequence; pass a padded "
                                 "tensor with lengths= instead")
            if lengths is not None:
                raise ValueError("lengths must be None when input is a PackedSequence "
                                 "(the PackedSequence carries its own lengths)")
            _checks.like_parameters("input", input.data, ref)
            self._check_features(input.data.shape[-1])
            B = int(input.batch_sizes[0])
            _checks.optional_h("h0", h0, (LD, B, H), ref, "(num_layers * num_directions, B, H)")
            # run in the PackedSequence's own order, longest first, so that each step takes
            # only the rows still going, as torch's packed GRU does
            if h0 is not None and input.sorted_indices is not None:
                h0 = h0.index_select(1, input.sorted_indices.to(h0.device))
            traced = self._as_torch_gru(None)
            got = None if traced else self._run_packed(input.data, input.batch_sizes, h0)
            if got is not None:
                data, h_n = got
            else:
                x, lens = pad_packed_sequence(PackedSequence(input.data, input.batch_sizes))  # (T, B, I)
                out, h_n = (self._torch_stack if traced else self._run)(x, h0, lens.to(x.device))
                data = pack_padded_sequence(out, lens, enforce_sorted=True).data
            if input.unsorted_indices is not None:
                h_n = h_n.index_select(1, input.unsorted_indices.to(h_n.device))
            return PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices), h_n

        _checks.tensor("input", input)
        if input.dim() not in (2, 3):
            raise _checks.InputError(
                "input must be 3-D, (T, B, I) or (B, T, I) with batch_first, or 2-D (T, I) "
                f"for one unbatched sequence; got shape {tuple(input.shape)}"
            )
        if not input.dtype.is_floating_point:
            raise _checks.InputDTypeError(f"input must be a floating-point tensor of dtype {ref.dtype}, "
                            f"got {input.dtype}")
        _checks.like_parameters("input", input, ref)
        self._check_features(input.shape[-1])

        unbatched = input.dim() == 2
        if unbatched:
            x = input.unsqueeze(1)  # (T, 1, I)
            expect, meaning = (LD, H), "(num_layers * num_directions, H) for an unbatched input"
        else:
            x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
            expect, meaning = (LD, x.shape[1], H), "(num_layers * num_directions, B, H)"
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise _checks.InputError(
                f"input must have at least one time step, got shape {tuple(input.shape)}")
        _checks.optional_h("h0", h0, expect, ref, meaning)
        lens = None if lengths is None else _checks.lengths(lengths, B, T, x.device)
        if unbatched and h0 is not None:
            h0 = h0.unsqueeze(1)
        if resets is not None:
            resets = self._check_resets(resets, T, B, unbatched, x.device)

        as_torch = B > 0 and self._as_torch_gru(resets)
        if as_torch and lens is None:
            # traced or exported: torch.nn.GRU's own call, so that the graph is the one it records
            flat = [w for ws in self.all_weights for w in ws]
            batch_dim = 0 if self.batch_first else 1
            xb = input.unsqueeze(batch_dim) if unbatched else input
            hb = h0 if h0 is not None else input.new_zeros(LD, B, H)
            out, h_n = torch._VF.gru(xb, hb, flat, self.bias, self.num_layers, self.dropout, self.training,
                                     self.bidirectional, self.batch_first)
            return (out.squeeze(batch_dim), h_n.squeeze(1)) if unbatched else (out, h_n)
        if B == 0:  # an empty batch gives empty outputs, as in torch
            out, h_n = self._empty(x, h0)
        else:
            out, h_n = (self._torch_stack if as_torch else self._run)(x, h0, lens, resets)
        if unbatched:
            return out.squeeze(1), h_n.squeeze(1)
        return (out.transpose(0, 1) if self.batch_first else out), h_n

    def __prepare_scriptable__(self) -> nn.Module:
        """What torch.jit.script compiles in this module's place: a copy sharing its parameters
        whose forward TorchScript reads (ScriptableGRU, grukit/scripting.py)."""
        return ScriptableGRU.of(self)  # afresh: the weights as the module holds them now

    def _like(self) -> Tensor:
        """The tensor whose dtype and device inputs must have."""
        return self.weight_ih_l0

    def _check_features(self, features: int) -> None:
        if features != self.input_size:
            raise _checks.InputError(
                f"input must have input_size={self.input_size} features in its last dimension, "
                f"got {features}"
            )

    def _check_resets(self, resets: Any, T: int, B: int, unbatched: bool, device: torch.device) -> Tensor:
        _checks.tensor("resets", resets)
        if resets.dtype != torch.bool:
            raise TypeError(f"resets must be a bool tensor, got dtype {resets.dtype}")
        expected = (T,) if unbatched else (T, B)
        _checks.shape("resets", resets, expected, "(T, B): time-major, one flag per step and row")
        if self.bidirectional:
            raise ValueError("resets are defined for one direction; this GRU is bidirectional")
        return resets.reshape(T, B).to(device)

    def _as_torch_gru(self, resets: Optional[Tensor]) -> bool:
        """Whether this call runs torch's own GRU function (aten::gru) because torch.jit.trace or
        torch.onnx.export is recording it: the graph then holds what torch.nn.GRU's holds (aten::gru,
        ONNX's GRU operator) and runs without grukit. Only for what that function computes; other
        configurations are traced through grukit's ops, and torch.onnx.export refuses them."""
        if self.engine == "reference":
            return False
        exporting = _onnx_exporting()
        if not (exporting or torch.jit.is_tracing()):
            return False
        used = engines.options(self, self.training, resets is not None)
        if engines.supports("cudnn", used):
            self.__dict__["last_engine"] = "cudnn"
            return True
        if exporting:
            missing = ", ".join(engines.OPTIONS[o] for o in sorted(used - engines.SUPPORT["cudnn"]))
            where = ("gk.export.onnx(model, path) writes it as ONNX's GRU operator (linear_before_reset=0)"
                     if engines.supports("onnx", used) else
                     "ONNX's GRU operator has no such variant; torch.export.export keeps grukit's own ops")
            raise ValueError(f"torch.onnx.export records gk.GRU as torch's own GRU function, which does not "
                             f"compute {missing}: {where}")
        return False

    def _empty(self, x: Tensor, h0: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """(T, 0, D*H) and (L*D, 0, H) for a batch of no rows, on the graph of the weights."""
        D = 2 if self.bidirectional else 1
        on_graph = sum(w.sum() for ws in self.all_weights for w in ws) * 0  # empty * it: still empty
        out = x.new_zeros(x.shape[0], 0, D * self.hidden_size) + on_graph
        h_n = (x.new_zeros(self.num_layers * D, 0, self.hidden_size) if h0 is None else h0) + on_graph
        return out, h_n

    def _torch_stack(self, x: Tensor, h0: Optional[Tensor], lens: Optional[Tensor],
                     resets: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """_run's contract on torch's own GRU function (traced or exported with lengths or a
        PackedSequence; _as_torch_gru has said yes, so resets is None)."""
        if h0 is None:
            h0 = x.new_zeros(self.num_layers * (2 if self.bidirectional else 1), x.shape[1], self.hidden_size)
        return engines.cudnn_stack()(x, h0, [w for ws in self.all_weights for w in ws], self.bias,
                                     self.num_layers, self.bidirectional, lens, self.dropout, self.training)

    def _sort_pays(self, x: Tensor, lens: Tensor) -> bool:
        """Whether inference with lengths should sort the rows longest first (the cpu engine's steps
        then skip the finished rows: `Running` in csrc/loop.h), the two copies of the batch that
        sorting takes paid for by the steps it skips: lengths out of order, a quarter of the padded
        steps or more unused, 96 hidden units or more and 512 row-steps or more (the copies cost ~10%
        at H=512, more than they save below; measured, benchmarks/README.md, session 20)."""
        if self.hidden_size < 96 or x.shape[0] * x.shape[1] < 512 or not bool((lens[1:] > lens[:-1]).any()):
            return False
        return float(lens.sum()) <= 0.75 * x.shape[0] * x.shape[1]

    def _plan(self, x: Tensor, h0: Optional[Tensor], resets: Optional[Tensor], lengths: bool
              ) -> tuple[str, frozenset, list[Tensor], bool]:
        """For a call on x: the engine that runs it, the options it uses, the weights flat in
        torch's order, and whether it needs gradients (a trace records one graph whatever the
        grad mode: torch.jit.trace checks it under no_grad)."""
        used = engines.options(self, self.training, resets is not None)
        flat = [w for ws in self.all_weights for w in ws]
        engine = engines.resolve(self.engine, x, used, lengths=lengths)
        grad = (torch.is_grad_enabled() or torch.jit.is_tracing()) and (
            x.requires_grad or (h0 is not None and h0.requires_grad) or any(p.requires_grad for p in flat))
        return engine, used, flat, grad

    def _run_packed(self, data: Tensor, batch_sizes: Tensor, h0: Optional[Tensor]
                    ) -> Optional[tuple[Tensor, Tensor]]:
        """Inference on the cpu engine straight on a PackedSequence's data (N, I), nothing padded:
        (packed output (N, D*H), h_n in the packed order). None where _run's other paths run."""
        if torch.jit.is_tracing():
            return None
        engine, used, flat, grad = self._plan(data, h0, None, lengths=True)
        if grad or engine != "cpu" or not engines.supports("cpu-stack", used):
            return None
        self.__dict__["last_engine"] = "cpu"
        if h0 is None:
            h0 = data.new_zeros(self.num_layers * (2 if self.bidirectional else 1), int(batch_sizes[0]),
                                self.hidden_size)
        return engines.stack_inference()(data, h0, flat, self.bias, self.num_layers, self.bidirectional, None,
                                         self.reset_after, batch_sizes)

    def _run(self, x: Tensor, h0: Optional[Tensor], lens: Optional[Tensor],
             resets: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """x: (T, B, I) time-major, h0: (L*D, B, H) or None -> (T, B, D*H), (L*D, B, H)."""
        D = 2 if self.bidirectional else 1
        if h0 is None:
            h0 = x.new_zeros(self.num_layers * D, x.shape[1], self.hidden_size)
        recorded = torch.jit.is_tracing()
        engine, used, flat, grad = self._plan(x, h0, resets, lengths=lens is not None)
        self.__dict__["last_engine"] = engine  # nn.Module.__setattr__ costs microseconds
        if engine == "cpu-bf16":
            if resets is None and not grad and not (self.training and self.dropout):
                from . import steps  # bfloat16 weights, float32 sums, on the step engine

                return steps.gru_stack(self, x, h0, lens)
            engine = self.__dict__["last_engine"] = "reference"
        if engine == "cudnn":  # torch's own GRU function, the whole stack in one call
            return engines.cudnn_stack()(x, h0, flat, self.bias, self.num_layers, self.bidirectional, lens,
                                         self.dropout, self.training)
        if engine == "cpu" and engines.supports("cpu-stack", used) and not grad:
            # inference: the whole stack in one compiled call
            if lens is not None and not recorded and self._sort_pays(x, lens):
                # rows sorted longest first, so that each step takes only the rows still running
                order = torch.argsort(lens, descending=True, stable=True)
                back = torch.argsort(order)
                out, h_n = engines.stack_inference()(
                    x.index_select(1, order), h0.index_select(1, order), flat, self.bias, self.num_layers,
                    self.bidirectional, lens[order], self.reset_after)
                return out.index_select(1, back), h_n.index_select(1, back)
            return engines.stack_inference()(x, h0, flat, self.bias, self.num_layers,
                                             self.bidirectional, lens, self.reset_after)
        return reference.gru(
            x, h0, self._layer_weights(), self.num_layers, self.bidirectional,
            reset_after=self.reset_after, lengths=lens, dropout=self.dropout,
            training=self.training, layer=engines.layer_fn(engine), resets=resets, zoneout=self.zoneout,
            recurrent_dropout=self.recurrent_dropout, layer_norm=self._layer_norm_gains(),
        )

    # ----------------------------------------------------------------- interop

    @classmethod
    def from_torch(cls, module: nn.GRU, engine: str = "auto") -> "GRU":
        """An exact copy of a ``torch.nn.GRU`` (same weights, same function)."""
        if not isinstance(module, nn.GRU):
            raise TypeError(f"module must be a torch.nn.GRU, got {_checks.describe(module)}")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"module must have proj_size=0 (GRUs have none), got {module.proj_size}")
        p = module.weight_ih_l0
        new = cls(module.input_size, module.hidden_size, module.num_layers, module.bias,
                  module.batch_first, module.dropout, module.bidirectional, reset_after=True,
                  engine=engine, device=p.device, dtype=p.dtype)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new

    def to_torch(self) -> nn.GRU:
        """An exact ``torch.nn.GRU`` copy; only reset_after=True exists in torch."""
        if not self.reset_after:
            raise ValueError("to_torch needs reset_after=True: torch.nn.GRU has no "
                             "reset_after=False variant, got reset_after=False")
        if self.layer_norm:
            raise ValueError("to_torch needs layer_norm=False: torch.nn.GRU has no layer "
                             "normalisation, got layer_norm=True")
        p = self.weight_ih_l0
        m = nn.GRU(self.input_size, self.hidden_size, self.num_layers, self.bias,
                   self.batch_first, self.dropout, self.bidirectional,
                   device=p.device, dtype=p.dtype)
        m.load_state_dict(self.state_dict())
        m.train(self.training)
        return m


class ScriptableGRU(GRU):
    """gk.GRU whose forward TorchScript compiles (grukit/scripting.py); eagerly, gk.GRU's own."""

    __jit_unused_properties__ = ["all_weights"]
    __jit_ignored_attributes__ = ["last_engine", "_weight_names", "_norm_names"]

    @classmethod
    def of(cls, module: GRU) -> "ScriptableGRU":
        new = cls.__new__(cls)
        new.__dict__.update(module.__dict__)  # the same parameters (the same dicts), options and state
        # the weights in torch's order, then the layer-norm gains (a list TorchScript types from its items)
        new._script_flat = [w for ws in module.all_weights for w in ws] + [
            g for gs in module._layer_norm_gains() or () for g in gs]
        return new

    @torch.jit.unused
    def _eager(self, input: Tensor, h0: Optional[Tensor], lengths: Optional[Tensor], hx: Optional[Tensor],
               resets: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        return GRU.forward(self, input, h0, lengths, hx, resets)

    def _get_name(self) -> str:  # printed as the module it stands for
        return "GRU"

    def forward(self, input: Tensor, h0: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
                hx: Optional[Tensor] = None, resets: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if not torch.jit.is_scripting():
            return self._eager(input, h0, lengths, hx, resets)
        if resets is not None:
            raise ValueError("resets are not available in a scripted gk.GRU; call it eagerly or trace it")
        if hx is not None:
            if h0 is not None:
                raise ValueError("pass the initial state as h0 or hx, not both")
            h0 = hx
        D = 2 if self.bidirectional else 1
        H = self.hidden_size
        unbatched = input.dim() == 2
        if input.dim() != 2 and input.dim() != 3:
            raise ValueError("input must be 3-D, (T, B, I) or (B, T, I) with batch_first, or 2-D (T, I)")
        if input.shape[-1] != self.input_size:
            raise ValueError("input must have input_size features in its last dimension")
        if unbatched:
            x = input.unsqueeze(1)
        else:
            x = input.transpose(0, 1) if self.batch_first else input
        B = x.shape[1]
        if h0 is None:
            h = x.new_zeros([self.num_layers * D, B, H])
        else:
            h = h0.unsqueeze(1) if unbatched else h0
        lens: Optional[Tensor] = None
        if lengths is not None:
            lens = lengths.to(x.device)
        weights = self.num_layers * D * (4 if self.bias else 2)
        out, h_n = scripting.stack(x, h, self._script_flat[:weights], self._script_flat[weights:],
                                   self.num_layers, D, self.bias, self.reset_after, lens, self.dropout,
                                   self.zoneout, self.recurrent_dropout, self.training)
        if unbatched:
            return out.squeeze(1), h_n.squeeze(1)
        return (out.transpose(0, 1) if self.batch_first else out), h_n


class GRUCell(nn.Module):
    r"""One GRU step, a drop-in for ``torch.nn.GRUCell``.

    ``h' = GRUCell(x, h)`` with the equations of :class:`GRU` (either
    ``reset_after``). Input (B, I) or (I,), h (B, H) or (H,) (zeros when
    omitted); returns h' of h's shape. Parameters ``weight_ih`` (3H, I),
    ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H), gate rows r, z, n.

    Example::

        >>> import torch, grukit as gk
        >>> cell = gk.GRUCell(3, 5)
        >>> h = torch.zeros(2, 5)
        >>> for x_t in torch.randn(4, 2, 3):
        ...     h = cell(x_t, h)
        >>> tuple(h.shape)
        (2, 5)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        reset_after: bool = True,
        engine: str = "auto",
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.bias = _checks.boolean("bias", bias)
        self.reset_after = _checks.boolean("reset_after", reset_after)
        self.engine = _checks.choice("engine", engine, engines.ENGINES)
        self.last_engine: Optional[str] = None  # which engine ran the last call
        H, factory = self.hidden_size, {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(3 * H, self.input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(3 * H, H, **factory))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * H, **factory))
            self.bias_hh = nn.Parameter(torch.empty(3 * H, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_uniform(self, self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if not self.reset_after:
            s += ", reset_after=False"
        return s

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        H = self.hidden_size
        weights = tuple(_read_weight(self, n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        ref = weights[0]
        _checks.tensor("input", input)
        if input.dim() not in (1, 2):
            raise _checks.InputError(f"input must be 2-D (B, I) or 1-D (I,) unbatched, "
                             f"got shape {tuple(input.shape)}")
        if not input.dtype.is_floating_point:
            raise _checks.InputDTypeError(f"input must be a floating-point tensor of dtype {ref.dtype}, "
                            f"got {input.dtype}")
        _checks.like_parameters("input", input, ref)
        if input.shape[-1] != self.input_size:
            raise _checks.InputError(f"input must have input_size={self.input_size} features in its "
                             f"last dimension, got {input.shape[-1]}")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        expect = (H,) if unbatched else (x.shape[0], H)
        _checks.optional_h("hx", hx, expect, ref, "(B, H), or (H,) for an unbatched input")
        h = x.new_zeros(x.shape[0], H) if hx is None else (hx.unsqueeze(0) if unbatched else hx)
        used = frozenset() if self.reset_after else frozenset({"reset_before"})
        if self.engine != "reference" and (_onnx_exporting() or torch.jit.is_tracing()):
            # recorded as torch.nn.GRUCell is (torch's own cell function), or as plain ops for
            # reset_after=False: a graph that saves, exports to ONNX and runs without grukit
            self.__dict__["last_engine"] = "cudnn" if self.reset_after else "reference"
        else:
            self.__dict__["last_engine"] = engines.resolve(self.engine, x, used)
        if self.last_engine == "reference":
            h_new = reference.gru_cell(x, h, *weights, reset_after=self.reset_after)
        elif self.last_engine == "cudnn":  # torch.nn.GRUCell's own fused kernel
            h_new = torch._VF.gru_cell(x, h, *weights)
        elif self.last_engine == "cpu" and not (torch.is_grad_enabled() and any(
                t is not None and t.requires_grad for t in (x, h, *weights))):
            # inference: the compiled one-step call, which skips the layer op's saved outputs
            h_new = engines.cell_inference()(x, h, weights, self.bias, self.reset_after)
        else:  # one time step of the fused layer
            h_new = engines.layer_fn(self.last_engine)(x.unsqueeze(0), h, weights, self.reset_after)[1]
        return h_new.squeeze(0) if unbatched else h_new

    def __prepare_scriptable__(self) -> nn.Module:
        """What torch.jit.script compiles in this module's place (ScriptableGRUCell)."""
        return ScriptableGRUCell.of(self)

    @classmethod
    def from_torch(cls, module: nn.GRUCell, engine: str = "auto") -> "GRUCell":
        """An exact copy of a ``torch.nn.GRUCell``."""
        if not isinstance(module, nn.GRUCell):
            raise TypeError(f"module must be a torch.nn.GRUCell, got {_checks.describe(module)}")
        p = module.weight_ih
        new = cls(module.input_size, module.hidden_size, module.bias, reset_after=True,
                  engine=engine, device=p.device, dtype=p.dtype)
        new.load_state_dict(module.state_dict())
        return new

    def to_torch(self) -> nn.GRUCell:
        """An exact ``torch.nn.GRUCell`` copy; only reset_after=True exists in torch."""
        if not self.reset_after:
            raise ValueError("to_torch needs reset_after=True: torch.nn.GRUCell has no "
                             "reset_after=False variant, got reset_after=False")
        p = self.weight_ih
        m = nn.GRUCell(self.input_size, self.hidden_size, self.bias, device=p.device, dtype=p.dtype)
        m.load_state_dict(self.state_dict())
        return m


class ScriptableGRUCell(GRUCell):
    """gk.GRUCell whose forward TorchScript compiles (grukit/scripting.py); eagerly, gk.GRUCell's own."""

    __jit_ignored_attributes__ = ["last_engine"]

    @classmethod
    def of(cls, module: GRUCell) -> "ScriptableGRUCell":
        new = cls.__new__(cls)
        new.__dict__.update(module.__dict__)
        # weight_ih, weight_hh, then bias_ih, bias_hh where there are biases
        new._script_weights = [w for w in (_read_weight(module, n) for n in (
            "weight_ih", "weight_hh", "bias_ih", "bias_hh")) if w is not None]
        return new

    @torch.jit.unused
    def _eager(self, input: Tensor, hx: Optional[Tensor]) -> Tensor:
        return GRUCell.forward(self, input, hx)

    def _get_name(self) -> str:
        return "GRUCell"

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        if not torch.jit.is_scripting():
            return self._eager(input, hx)
        if input.dim() != 1 and input.dim() != 2:
            raise ValueError("input must be 2-D (B, I) or 1-D (I,) unbatched")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        if hx is None:
            h = x.new_zeros([x.shape[0], self.hidden_size])
        else:
            h = hx.unsqueeze(0) if unbatched else hx
        b_ih: Optional[Tensor] = None
        b_hh: Optional[Tensor] = None
        if len(self._script_weights) == 4:
            b_ih, b_hh = self._script_weights[2], self._script_weights[3]
        h_new = scripting.cell(x, h, self._script_weights[0], self._script_weights[1], b_ih, b_hh, None,
                               None, self.reset_after, None)
        return h_new.squeeze(0) if unbatched else h_new
