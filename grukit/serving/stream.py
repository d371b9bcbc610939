"""Streaming inference: ``gk.stream(model, batch_size=1)``, one time step per call.

A :class:`Stream` holds a model's state between calls: ``step(x_t)`` takes one step's
input and returns that step's output, as the model would give at that step of the
whole sequence; ``reset()`` starts over; ``state`` reads or sets the state. It serves
the places where GRUs run one step at a time: keyword spotting and speech front
ends, sensor streams, online forecasts, reinforcement-learning actors, text
generation.

What streams: ``gk.GRU`` (unidirectional; the top layer's output), ``gk.QuantizedGRU``,
``gk.MinGRU``, and a ``Sequential`` of recurrent layers (GRU, MinGRU; any
``return_sequences``) and per-step layers (Dense, Dropout, which is off here, and an
Embedding first, which makes the input one token id per row). Float32, bfloat16
(``gk.quantize(model, torch.bfloat16)``) and int8 (``gk.quantize(model)``) weights.
Bidirectional layers, ``go_backwards`` and layers over the whole sequence (pooling,
Masking) cannot stream: a ``ValueError`` says which layer.

The model is read once, when the stream is made: later changes to its weights are
not seen (make a new stream). The stream runs the model as in evaluation: no
dropout; zoneout blends with its probability. A stream is not for concurrent use
from several threads; make one per thread (they share nothing).

On the compiled CPU engine (``csrc/stream.cpp``, ``grukit/steps.py``) the state and every buffer live in
the stream, and a step is one call into C++ that allocates nothing; the only
allocation is the returned output (pass ``out=`` to write into your own array
instead). Outputs equal the whole-sequence call to float32 rounding (the same gate
code; the sums of a product may be added in another order). Without the compiled
engine, the same steps run in PyTorch ops.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import _checks, engines, reference, steps
from ..mingru import MinGRU
from ..modules import GRU
from ..training import layers as L
from ..training.sequential import Sequential
from .quantize import QuantizedGRU


def stream(model: nn.Module, batch_size: int = 1) -> "Stream":
    """A :class:`Stream` over ``model`` for ``batch_size`` rows (see the module's docs).

    Example::

        >>> import numpy as np, torch, grukit as gk
        >>> gru = gk.GRU(4, 8)
        >>> s = gk.stream(gru)
        >>> x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
        >>> ys = np.stack([s.step(x_t) for x_t in x])
        >>> bool(np.allclose(ys, gru(torch.from_numpy(x))[0].detach().numpy(), atol=1e-6))
        True
    """
    return Stream(model, batch_size)


class Stream:
    """Steps of one model over ``batch_size`` rows; made by :func:`stream`."""

    def __init__(self, model: nn.Module, batch_size: int = 1) -> None:
        self.batch_size = _checks.positive_int("batch_size", batch_size)
        self.model = model
        plan, self._per_layer = _plan(model)
        first = plan[0]
        self.takes_ids = first[0] == "embedding"
        self.input_size: Optional[int] = None if self.takes_ids else _in_size(first)
        self.output_size = _out_size(plan[-1])
        compiled = engines.compiled_cpu()
        self.compiled = compiled is not None and hasattr(compiled, "StreamCore")
        self._core = steps.compiled_core(compiled, plan, self.batch_size) if self.compiled else \
            _TorchCore(plan, self.batch_size)
        self._xt, self._yt = self._core.input(), self._core.output()
        self._x, self._y = self._xt.numpy(), self._yt.numpy()
        # the one row of an unbatched call, as views (an id's is 0-d)
        self._x1, self._y1 = self._x[:1].reshape(self._x.shape[1:]), self._y[0]
        self._states = list(self._core.state_views())
        self._step = self._core.step
        B = self.batch_size
        self._shape = (B,) if self.takes_ids else (B, self.input_size)
        self._single = () if self.takes_ids else (self.input_size,)

    def __repr__(self) -> str:
        engine = "compiled" if self.compiled else "torch"
        return (f"Stream({type(self.model).__name__}, batch_size={self.batch_size}, "
                f"input={'ids' if self.takes_ids else self.input_size}, output={self.output_size}, {engine})")

    # ----------------------------------------------------------------- stepping
    def step(self, x: Any, out: Optional[np.ndarray] = None) -> Any:
        """One step: ``x`` (batch_size, input_size), or (input_size,) when batch_size is 1
        (token ids: (batch_size,) or one id), a NumPy array or a CPU tensor. Returns
        that step's output, (batch_size, output_size) or (output_size,): NumPy for NumPy
        input, a tensor for a tensor. ``out``: a float32 NumPy array of that shape to
        write into (then returned) instead of a new one."""
        if type(x) is np.ndarray:
            shape = x.shape
            if shape == self._shape:
                self._put(self._x, x)
                self._step()
                y = self._y
            elif shape == self._single and self.batch_size == 1:
                self._put(self._x1, x)
                self._step()
                y = self._y1
            else:
                raise self._shape_error(shape)
            if out is None:
                return y.copy()
            return self._into(out, y)
        if isinstance(x, Tensor):
            return self._step_tensor(x, out)
        if isinstance(x, (int, np.integer)) and self.takes_ids:
            return self.step(np.asarray(x), out)
        if isinstance(x, (list, tuple, float, int, np.generic)):
            return self.step(np.asarray(x, dtype=np.int64 if self.takes_ids else np.float32), out)
        raise TypeError(f"x must be a NumPy array or a torch tensor, got {_checks.describe(x)}")

    def _put(self, dst: np.ndarray, x: np.ndarray) -> None:
        try:
            np.copyto(dst, x, casting="same_kind")
        except TypeError:
            want = "integer token ids" if self.takes_ids else "floating-point values"
            raise TypeError(f"x must hold {want}, got dtype {x.dtype}") from None

    def _into(self, out: Any, y: np.ndarray) -> np.ndarray:
        if type(out) is not np.ndarray or out.dtype != np.float32 or out.shape != y.shape:
            raise TypeError(f"out must be a float32 NumPy array of shape {y.shape}, "
                            f"got {_checks.describe(out)}")
        np.copyto(out, y)
        return out

    def _step_tensor(self, x: Tensor, out: Any) -> Tensor:
        if x.device.type != "cpu":
            raise ValueError(f"a stream runs on the CPU; x is on {x.device}")
        shape = tuple(x.shape)
        if shape == self._shape:
            dst, y = self._xt, self._yt
        elif shape == self._single and self.batch_size == 1:
            dst, y = self._xt[0], self._yt[0]
        else:
            raise self._shape_error(shape)
        if self.takes_ids == x.dtype.is_floating_point or x.dtype.is_complex:
            want = "integer token ids" if self.takes_ids else "floating-point values"
            raise TypeError(f"x must hold {want}, got dtype {x.dtype}")
        dst.copy_(x.detach())
        self._step()
        if out is not None:
            raise TypeError("out= takes NumPy arrays; for tensor input the output is a new tensor")
        y = y.clone()
        return y if not x.dtype.is_floating_point or x.dtype == y.dtype else y.to(x.dtype)

    def _shape_error(self, shape: tuple) -> ValueError:
        one = " or ()" if self.takes_ids else f" or {self._single}"
        return ValueError(f"x must have shape {self._shape}" + (one if self.batch_size == 1 else "")
                          + f" (batch_size, {'one id' if self.takes_ids else 'input_size'}), got {shape}")

    def run(self, x: Any) -> Any:
        """Many steps at once, carrying the state: x (T, batch_size, input_size) (or (T,
        batch_size) ids) -> (T, batch_size, output_size), the same as T calls of step."""
        numpy = isinstance(x, np.ndarray)
        t = torch.from_numpy(np.ascontiguousarray(x)) if numpy else x
        if not isinstance(t, Tensor):
            raise TypeError(f"x must be a NumPy array or a torch tensor, got {_checks.describe(x)}")
        want = (self.batch_size,) if self.takes_ids else (self.batch_size, self.input_size)
        if t.dim() != len(want) + 1 or tuple(t.shape[1:]) != want:
            raise ValueError(f"x must have shape (T, {', '.join(map(str, want))}), got {tuple(t.shape)}")
        with torch.no_grad():
            y = self._core.run(t.detach().cpu())
        return y.numpy() if numpy else y

    # -------------------------------------------------------------------- state
    def reset(self, rows: Any = None) -> None:
        """Zero the state of every row, or of ``rows`` (indices or a boolean mask)."""
        if rows is None:
            for s in self._states:
                s.zero_()
            return
        index = torch.as_tensor(np.asarray(rows))
        if index.dtype == torch.bool:
            if index.shape != (self.batch_size,):
                raise ValueError(f"rows as a mask must have shape ({self.batch_size},), "
                                 f"got {tuple(index.shape)}")
        elif index.dtype.is_floating_point or index.dim() > 1:
            raise TypeError(f"rows must be row indices or a boolean mask, got {rows!r}")
        elif index.numel() and (int(index.min()) < -self.batch_size or int(index.max()) >= self.batch_size):
            raise ValueError(f"rows must be in [0, {self.batch_size}), got {rows!r}")
        for s in self._states:
            s[index] = 0.0

    @property
    def state(self) -> Union[Tensor, list[Tensor]]:
        """A copy of the state: (num_layers, batch_size, H) for a gk.GRU/MinGRU (h_n's
        layout), a list of (batch_size, units), one per recurrent layer, for a Sequential."""
        if self._per_layer:
            return [s.clone() for s in self._states]
        return torch.stack([s.clone() for s in self._states])

    @state.setter
    def state(self, value: Any) -> None:
        values = list(value) if self._per_layer and isinstance(value, (list, tuple)) else None
        if values is None:
            value = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
            values = list(value) if not self._per_layer and value.dim() == 3 else [value]
        if len(values) != len(self._states):
            raise ValueError(f"state must hold {len(self._states)} layer state(s), got {len(values)}")
        for s, v in zip(self._states, values, strict=True):
            v = torch.as_tensor(v)
            if tuple(v.shape) != tuple(s.shape) or not (v.dtype.is_floating_point):
                raise ValueError(f"each layer's state must be a float (batch_size, H) = {tuple(s.shape)}, "
                                 f"got {v.dtype} {tuple(v.shape)}")
        for s, v in zip(self._states, values, strict=True):
            s.copy_(torch.as_tensor(v).detach())


# ---------------------------------------------------------------- the plan
def _in_size(item: tuple) -> int:
    kind, spec = item
    return {"gru": lambda: spec["w_ih"].shape[1], "mingru": lambda: spec["w"].shape[1],
            "dense": lambda: spec["w"].shape[1]}[kind]()


def _out_size(item: tuple) -> int:
    kind, spec = item
    if kind == "gru":
        return spec["w_hh"].shape[1]
    if kind == "mingru":
        return spec["w"].shape[0] // 2
    return spec["w"].shape[0] if kind == "dense" else spec["table"].shape[1]


def _plan(model: nn.Module) -> tuple[list[tuple[str, dict]], bool]:
    """The model as a list of (kind, tensors) steps, and whether its state is per layer."""
    if isinstance(model, Sequential):
        return _sequential_plan(model), True
    if isinstance(model, (GRU, MinGRU)):
        return _module_plan(model, "model"), False
    raise TypeError(f"model must be a grukit GRU, QuantizedGRU, MinGRU or Sequential, got "
                    f"{_checks.describe(model)}")


def _on_cpu(module: nn.Module, what: str) -> None:
    for t in list(module.parameters()) + list(module.buffers()):
        if t.device.type != "cpu":
            raise ValueError(f"a stream runs on the CPU; {what} is on {t.device} (move it with .cpu())")
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.bfloat16):
            raise TypeError(f"a stream runs float32 or bfloat16 weights (or int8 from gk.quantize); {what} "
                            f"has {t.dtype} (convert it with .float())")


def _module_plan(m: nn.Module, what: str) -> list[tuple[str, dict]]:
    """One (kind, tensors) item per layer (steps.py's plans)."""
    _on_cpu(m, what)
    if isinstance(m, MinGRU):
        p = dict(m.named_parameters())
        return [("mingru", {"w": p[f"weight_l{k}"].detach(), "b": p.get(f"bias_l{k}")})
                for k in range(m.num_layers)]
    if m.bidirectional:
        raise ValueError(f"{what} is bidirectional: a stream runs forward in time only, one step at a time")
    out = []
    if isinstance(m, QuantizedGRU):
        b = m._buffers
        for names in m._layers:
            q_ih, s_ih, q_hh, s_hh, *bias = (b[n] for n in names)
            spec = {"w_ih": q_ih, "s_ih": s_ih, "w_hh": q_hh, "s_hh": s_hh,
                    "b_ih": bias[0] if bias else None, "b_hh": bias[1] if bias else None,
                    "reset_after": m.reset_after, "gamma_ih": None, "gamma_hh": None, "zoneout": 0.0}
            out.append(("gru", spec))
        return out
    return steps.gru_plan(m)


def _sequential_plan(model: Sequential) -> list[tuple[str, dict]]:
    plan: list[tuple[str, dict]] = []
    for i, layer in enumerate(model.layers):
        what = f"layer {i} ({type(layer).__name__})"
        if isinstance(layer, L.Input) or isinstance(layer, L.Dropout):
            continue
        if not getattr(layer, "built", False):
            raise ValueError(f"{what} is not built: call the model once (or build it) before streaming")
        if isinstance(layer, L.Embedding):
            if plan:
                raise ValueError(f"{what}: an Embedding streams only as the first layer")
            if layer.mask_zero:
                raise ValueError(f"{what} has mask_zero=True: masked steps cannot be told apart one step at "
                                 "a time; use mask_zero=False to stream")
            _on_cpu(layer, what)
            plan.append(("embedding", {"table": layer.embedding.weight.detach()}))
        elif isinstance(layer, L.GRU):
            if layer.bidirectional or layer.go_backwards:
                raise ValueError(f"{what} runs backwards in time: a stream runs forward only")
            plan += _module_plan(layer.gru, what)
        elif isinstance(layer, L.MinGRU):
            plan += _module_plan(layer.rnn, what)
        elif isinstance(layer, L.Dense):
            _on_cpu(layer, what)
            lin = layer.linear
            bias = None if lin.bias is None else lin.bias.detach()
            plan.append(("dense", {"w": lin.weight.detach(), "b": bias, "activation": layer.activation}))
        else:
            raise ValueError(f"{what} is not a per-step layer: a stream takes recurrent layers followed by "
                             "Dense and Dropout (and an Embedding first)")
    if not plan:
        raise ValueError("the model has no layers to stream")
    if not any(kind in ("gru", "mingru") for kind, _ in plan):
        raise ValueError("the model has no recurrent layer to stream")
    return plan


class _TorchCore:
    """The steps of csrc/stream.cpp in PyTorch ops (float32), for installs without the
    compiled engine. Same interface as the compiled StreamCore."""

    def __init__(self, plan: list, batch: int) -> None:
        self.plan = [(kind, {k: (v.detach().float() if isinstance(v, Tensor) and v.is_floating_point() else v)
                             for k, v in spec.items()}) for kind, spec in plan]
        for _, spec in self.plan:  # int8 weights, dequantised
            if spec.get("s_ih") is not None:
                spec["w_ih"] = spec["w_ih"].float() * spec["s_ih"][:, None]
            if spec.get("s_hh") is not None:
                spec["w_hh"] = spec["w_hh"].float() * spec["s_hh"][:, None]
        ids = plan[0][0] == "embedding"
        self._input = torch.zeros(batch, dtype=torch.int64) if ids else torch.zeros(batch, _in_size(plan[0]))
        self._output = torch.zeros(batch, _out_size(plan[-1]))
        self._states = [torch.zeros(batch, _out_size(item)) for item in plan if item[0] in ("gru", "mingru")]

    def input(self) -> Tensor:
        return self._input

    def output(self) -> Tensor:
        return self._output

    def state_views(self) -> list[Tensor]:
        return self._states

    def step(self) -> None:
        with torch.no_grad():
            self._output.copy_(self._forward(self._input))

    def run(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.stack([self._forward(x_t) for x_t in x]) if len(x) else \
                x.new_zeros(0, *self._output.shape, dtype=torch.float32)

    def _forward(self, x: Tensor) -> Tensor:
        k = 0
        for kind, spec in self.plan:
            if kind == "embedding":
                x = F.embedding(x.long(), spec["table"])
            elif kind == "dense":
                x = L.ACTIVATIONS[spec["activation"]](F.linear(x.float(), spec["w"], spec["b"]))
            else:
                h = self._states[k]
                if kind == "gru":
                    gains = None if spec["gamma_ih"] is None else (spec["gamma_ih"], spec["gamma_hh"])
                    new = reference.gru_cell(x.float(), h, spec["w_ih"], spec["w_hh"], spec["b_ih"],
                                             spec["b_hh"], reset_after=spec["reset_after"], layer_norm=gains)
                    if spec["zoneout"] > 0:
                        new = spec["zoneout"] * h + (1 - spec["zoneout"]) * new
                else:
                    kv = F.linear(x.float(), spec["w"], spec["b"])
                    key, val = kv.chunk(2, dim=-1)
                    new = h + torch.sigmoid(key) * (reference.mingru_g(val) - h)
                h.copy_(new)
                x = new
                k += 1
        return x
