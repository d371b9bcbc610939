"""Export to ONNX: ``gk.export.onnx(model, path)`` for a ``gk.GRU`` or a ``gk.Sequential``.

The graph is written node by node from the weights, not traced, so the batch and
time axes stay dynamic and each GRU layer-direction becomes one ONNX ``GRU`` node
with the flag of its own convention: ``reset_after=True`` is
``linear_before_reset=1`` (torch's and Keras' default), ``reset_after=False`` is
``linear_before_reset=0`` (Cho et al. 2014). ONNX orders the gate blocks z, r, h
where grukit (and torch) order them r, z, n; the weights are reordered here.

Needs the ``onnx`` package (``pip install -e .[export]``); onnxruntime runs the result.
What ONNX's GRU op cannot express is refused with a ValueError: zoneout (its
inference blend), layer_norm, stateful layers, MinGRU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from .. import _checks, engines
from ..gate_order import swap_zr
from ..modules import GRU
from ..training import layers as L
from ..training.sequential import Sequential

OPSET = 17
IR_VERSION = 8  # the IR of opset 17 (ONNX 1.12): runtimes older than the onnx package still read it


def _require_onnx() -> Any:
    try:
        import onnx as onnx_pkg
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("gk.export.onnx needs the onnx package: pip install -e .[export] "
                          "(or pip install onnx onnxruntime)") from None
    return onnx_pkg


def _zrn(w: torch.Tensor) -> np.ndarray:
    """grukit's gate blocks r, z, n (first axis) -> ONNX's z, r, h, as float32."""
    return swap_zr(w.detach().float().cpu(), 0).numpy()


class _Graph:
    """Nodes, constants and names of the ONNX graph being written."""

    def __init__(self) -> None:
        self.onnx = _require_onnx()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, stem: str = "const", dtype: Any = None) -> str:
        name = self.name(stem)
        array = np.asarray(value, dtype=dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def dim(self, x: str, axis: int) -> str:
        """The size of x along axis, as a 1-element int64 tensor."""
        return self.op("Gather", [self.op("Shape", [x]), self.const([axis], dtype=np.int64)], axis=0)

    def reverse_time(self, x: str, axis: int) -> str:
        big = np.iinfo(np.int64).max
        return self.op("Slice", [x, self.const([-1], dtype=np.int64), self.const([-big], dtype=np.int64),
                                 self.const([axis], dtype=np.int64), self.const([-1], dtype=np.int64)])

    def model(self, inputs: list[Any], outputs: list[Any], doc: str) -> Any:
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, "grukit", inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="grukit", doc_string=doc, ir_version=IR_VERSION)
        self.onnx.checker.check_model(model, full_check=True)
        return model


def _check_exportable(gru: GRU, what: str) -> None:
    engines.require("onnx", engines.options(gru), what)  # an inference graph: no training options


def _gru_stack(g: _Graph, x: str, gru: GRU, h0: Optional[str], seq_lens: Optional[str]) -> tuple[str, str]:
    """x: (T, B, I) -> output (T, B, D*H), h_n (L*D, B, H): one GRU node per layer."""
    D = 2 if gru.bidirectional else 1
    H = gru.hidden_size
    finals = []
    for layer in range(gru.num_layers):
        ws = gru.all_weights[layer * D:(layer + 1) * D]
        W = g.const(np.stack([_zrn(w[0]) for w in ws]), "W")
        R = g.const(np.stack([_zrn(w[1]) for w in ws]), "R")
        inputs = [x, W, R]
        if gru.bias:
            inputs.append(g.const(np.stack([np.concatenate([_zrn(w[2]), _zrn(w[3])]) for w in ws]), "B"))
        else:
            inputs.append("")
        inputs.append(seq_lens or "")
        if h0 is not None:
            inputs.append(g.op("Slice", [h0, g.const([layer * D], dtype=np.int64),
                                         g.const([(layer + 1) * D], dtype=np.int64),
                                         g.const([0], dtype=np.int64)]))
        y, y_h = g.op("GRU", inputs, n_out=2, hidden_size=H, linear_before_reset=int(gru.reset_after),
                      direction="bidirectional" if D == 2 else "forward")
        # Y (T, D, B, H) -> (T, B, D*H), the next layer's input
        x = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.const([0, 0, -1], dtype=np.int64)])
        finals.append(y_h)
    h_n = finals[0] if len(finals) == 1 else g.op("Concat", finals, axis=0)
    return x, h_n


def _export_gru(g: _Graph, gru: GRU, h0: bool, lengths: bool) -> tuple[list[Any], list[Any]]:
    helper, TP = g.onnx.helper, g.onnx.TensorProto
    _check_exportable(gru, "gru")
    D = 2 if gru.bidirectional else 1
    I, H, LD = gru.input_size, gru.hidden_size, gru.num_layers * D
    x_dims = ["batch", "time", I] if gru.batch_first else ["time", "batch", I]
    y_dims = ["batch", "time", D * H] if gru.batch_first else ["time", "batch", D * H]
    inputs = [helper.make_tensor_value_info("input", TP.FLOAT, x_dims)]
    if h0:
        inputs.append(helper.make_tensor_value_info("h0", TP.FLOAT, [LD, "batch", H]))
    seq_lens = None
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TP.INT64, ["batch"]))
        seq_lens = g.op("Cast", ["lengths"], to=TP.INT32)
    x = g.op("Transpose", ["input"], perm=[1, 0, 2]) if gru.batch_first else "input"
    y, h_n = _gru_stack(g, x, gru, "h0" if h0 else None, seq_lens)
    g.nodes.append(helper.make_node("Transpose", [y], ["output"], perm=[1, 0, 2]) if gru.batch_first
                   else helper.make_node("Identity", [y], ["output"]))
    g.nodes.append(helper.make_node("Identity", [h_n], ["h_n"]))
    outputs = [helper.make_tensor_value_info("output", TP.FLOAT, y_dims),
               helper.make_tensor_value_info("h_n", TP.FLOAT, [LD, "batch", H])]
    return inputs, outputs


# ------------------------------------------------------------------ Sequential

_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu", "softplus": "Softplus",
                "selu": "Selu"}


def _activation(g: _Graph, x: str, name: Optional[str]) -> str:
    if name in (None, "linear"):
        return x
    if name == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if name == "gelu":  # torch's exact gelu: x/2 (1 + erf(x / sqrt 2))
        erf = g.op("Erf", [g.op("Mul", [x, g.const(np.float32(1 / np.sqrt(2)))])])
        return g.op("Mul", [g.op("Mul", [x, g.const(np.float32(0.5))]),
                            g.op("Add", [erf, g.const(np.float32(1.0))])])
    return g.op(_ACTIVATIONS[name], [x])


def _keras_gru(g: _Graph, layer: L.GRU, x: str, mask: Optional[str]) -> tuple[str, Optional[str]]:
    """layers.GRU on x (B, T, F) with a (B, T) bool mask or None, as its call() does."""
    TP = g.onnx.TensorProto
    what = f"layers.GRU({layer.units})"
    if layer.stateful:
        raise ValueError(f"{what} is stateful: an ONNX graph carries no state between calls; export "
                         "a copy with stateful=False and pass the state yourself")
    if layer.return_state:
        raise ValueError(f"{what} has return_state=True; export supports one output per layer")
    gru = layer.gru
    _check_exportable(gru, what)
    D = 2 if gru.bidirectional else 1
    out_mask = mask  # the input's mask passes on, also with go_backwards (Keras)
    if layer.go_backwards:
        x = g.reverse_time(x, 1)
        mask = None if mask is None else g.reverse_time(mask, 1)
    seq_lens = order = None
    if mask is not None:
        # the real steps of each row first, in order (call()'s _compact): sort by
        # (padding flag, position), which has no ties
        T = g.dim(x, 1)
        pos = g.op("Range", [g.const(np.int64(0)), g.op("Squeeze", [T]), g.const(np.int64(1))])
        pad = g.op("Cast", [g.op("Not", [mask])], to=TP.INT64)
        key = g.op("Add", [g.op("Mul", [pad, T]), pos])
        order = g.op("TopK", [key, T], n_out=2, axis=1, largest=0, sorted=1)[1]  # (B, T)
        index = g.op("Expand", [g.op("Unsqueeze", [order, g.const([2], dtype=np.int64)]), g.op("Shape", [x])])
        x = g.op("GatherElements", [x, index], axis=1)
        seq_lens = g.op("Cast", [g.op("ReduceSum", [g.op("Cast", [mask], to=TP.INT64),
                                                     g.const([1], dtype=np.int64)], keepdims=0)], to=TP.INT32)
    y, h_n = _gru_stack(g, g.op("Transpose", [x], perm=[1, 0, 2]), gru, None, seq_lens)
    if layer.return_sequences:
        out = g.op("Transpose", [y], perm=[1, 0, 2])  # (B, T, D*units)
        if order is not None and layer.zero_output_for_mask:  # back to the original positions, 0 between
            index = g.op("Expand", [g.op("Unsqueeze", [order, g.const([2], dtype=np.int64)]),
                                    g.op("Shape", [out])])
            zeros = g.op("ConstantOfShape", [g.op("Shape", [out])],
                         value=g.onnx.numpy_helper.from_array(np.zeros(1, np.float32)))
            out = g.op("ScatterElements", [zeros, index, out], axis=1)
        elif mask is not None and not layer.zero_output_for_mask:
            # each step takes the output of the last real step so far (layers._carry): the
            # compacted output at (real steps so far) - 1, zeros before the first
            seen = g.op("CumSum", [g.op("Cast", [mask], to=TP.INT64), g.const(np.int64(1))])  # (B, T)
            prior = g.op("Sub", [seen, g.const(np.int64(1))])
            index = g.op("Max", [prior, g.const(np.int64(0))])
            index = g.op("Expand", [g.op("Unsqueeze", [index, g.const([2], dtype=np.int64)]),
                                    g.op("Shape", [out])])
            out = g.op("GatherElements", [out, index], axis=1)
            started = g.op("Cast", [g.op("Greater", [seen, g.const(np.int64(0))])], to=TP.FLOAT)
            out = g.op("Mul", [out, g.op("Unsqueeze", [started, g.const([2], dtype=np.int64)])])
        return out, out_mask
    last = h_n
    if gru.num_layers * D > D:
        end = np.iinfo(np.int64).max
        last = g.op("Slice", [h_n, g.const([-D], dtype=np.int64), g.const([end], dtype=np.int64),
                              g.const([0], dtype=np.int64)])
    last = g.op("Reshape", [g.op("Transpose", [last], perm=[1, 0, 2]), g.const([0, -1], dtype=np.int64)])
    if mask is not None and layer.zero_output_for_mask:  # zeros where the last step is masked
        T = g.dim(x, 1)
        end = g.op("Slice", [mask, g.op("Sub", [T, g.const([1], dtype=np.int64)]), T,
                             g.const([1], dtype=np.int64)])  # (B, 1)
        last = g.op("Mul", [last, g.op("Cast", [end], to=TP.FLOAT)])
    return last, None


def _export_sequential(g: _Graph, model: Sequential) -> tuple[list[Any], list[Any]]:
    helper, TP = g.onnx.helper, g.onnx.TensorProto
    if model.input_spec is None:
        raise ValueError("model must be built before export: call it on data (fit, predict) or start it "
                         "with layers.Input(shape)")
    shape, dtype = model.input_spec
    ids = dtype == "int64"
    dims = ["batch", "time", *shape[1:]]
    inputs = [helper.make_tensor_value_info("input", TP.INT64 if ids else TP.FLOAT, dims)]
    x, mask = "input", None
    per_step, features = True, (shape[1] if len(shape) > 1 else None)  # the output's shape, as it goes
    for i, layer in enumerate(model.layers):
        if isinstance(layer, (L.Input, L.Dropout)):
            continue
        if isinstance(layer, L.Embedding):
            if layer.mask_zero:
                nonzero = g.op("Not", [g.op("Equal", [x, g.const(np.int64(0))])])
                mask = nonzero if mask is None else g.op("And", [mask, nonzero])
            x = g.op("Gather", [g.const(layer.embedding.weight.detach().float().numpy(), "embedding"), x],
                     axis=0)
            features = layer.output_dim
        elif isinstance(layer, L.Masking):
            differs = g.op("Not", [g.op("Equal", [x, g.const(np.float32(layer.mask_value))])])
            keep = g.op("Cast", [g.op("ReduceMax", [g.op("Cast", [differs], to=TP.FLOAT)], axes=[-1],
                                      keepdims=0)], to=TP.BOOL)
            x = g.op("Mul", [x, g.op("Unsqueeze", [g.op("Cast", [keep], to=TP.FLOAT),
                                                   g.const([-1], dtype=np.int64)])])
            mask = keep if mask is None else g.op("And", [mask, keep])
        elif isinstance(layer, L.Dense):
            lin = layer.linear
            x = g.op("MatMul", [x, g.const(lin.weight.detach().float().numpy().T.copy(), "dense")])
            if lin.bias is not None:
                x = g.op("Add", [x, g.const(lin.bias.detach().float().numpy(), "dense_bias")])
            x = _activation(g, x, layer.activation)
            features = layer.units
        elif isinstance(layer, L.Bidirectional):
            if layer.merge_mode is None:
                raise ValueError("Bidirectional(merge_mode=None) has two outputs; export supports one "
                                 "output per layer")
            if layer.backward_layer is not None:
                raise ValueError(f"layer {i}: a Bidirectional with its own backward_layer has no ONNX export "
                                 "(one ONNX GRU node runs both directions with one set of sizes and options)")
            x, mask = _keras_gru(g, layer.layer, x, mask)
            per_step = layer.layer.return_sequences
            features = layer.layer.units * (2 if layer.merge_mode == "concat" else 1)
            if layer.merge_mode != "concat":
                fwd, bwd = g.op("Split", [x], n_out=2, axis=-1)
                if layer.merge_mode == "mul":
                    x = g.op("Mul", [fwd, bwd])
                else:
                    x = g.op("Add", [fwd, bwd])
                    if layer.merge_mode == "ave":
                        x = g.op("Mul", [x, g.const(np.float32(0.5))])
        elif isinstance(layer, L.GRU):
            x, mask = _keras_gru(g, layer, x, mask)
            per_step, features = layer.return_sequences, layer.units * (2 if layer.bidirectional else 1)
        else:
            raise ValueError(f"layer {i} ({type(layer).__name__}) has no ONNX export; exportable: Input, "
                             "Embedding, Masking, Dense, Dropout, GRU, Bidirectional")
    g.nodes.append(helper.make_node("Identity", [x], ["output"]))
    out_dims = ["batch", "time", features] if per_step else ["batch", features]
    return inputs, [helper.make_tensor_value_info("output", TP.FLOAT, out_dims)]


# ------------------------------------------------------------------ public

def onnx_model(model: nn.Module, *, h0: bool = False, lengths: bool = False) -> Any:
    """The ``onnx.ModelProto`` of a ``gk.GRU`` or ``gk.Sequential`` (checked by onnx's checker).

    gk.GRU: input ``input`` (T, B, I), or (B, T, I) with batch_first; outputs
    ``output`` and ``h_n`` as the module's. ``h0=True`` adds an input ``h0``
    (L*D, B, H) (else zeros), ``lengths=True`` an int64 input ``lengths`` (B,) for a
    padded batch (ONNX's sequence_lens). Sequential: input ``input`` as the model
    takes it ((B, T, F) floats, or (B, T) int64 token ids before an Embedding),
    output ``output``; masks (Embedding mask_zero, Masking) are computed inside the
    graph. Batch and time sizes are free. Weights are written as float32.
    """
    g = _Graph()
    if isinstance(model, GRU):
        h0, lengths = _checks.boolean("h0", h0), _checks.boolean("lengths", lengths)
        inputs, outputs = _export_gru(g, model, h0, lengths)
    elif isinstance(model, Sequential):
        if h0 or lengths:
            raise ValueError("h0 and lengths apply to a gk.GRU; a Sequential model takes its masks from "
                             "its Embedding(mask_zero=True) or Masking layers")
        inputs, outputs = _export_sequential(g, model)
    else:
        raise TypeError(f"model must be a grukit.GRU or grukit.Sequential, got {_checks.describe(model)}")
    return g.model(inputs, outputs, doc=f"exported by grukit from {type(model).__name__}")


def onnx(model: nn.Module, path: Union[str, Path], *, h0: bool = False, lengths: bool = False) -> Path:
    """Write ``model`` to ``path`` as ONNX (see :func:`onnx_model`) and return the path.

    Example::

        >>> import tempfile, os, grukit as gk
        >>> gru = gk.GRU(4, 8, num_layers=2, bidirectional=True, batch_first=True)
        >>> path = gk.export.onnx(gru, os.path.join(tempfile.mkdtemp(), "gru.onnx"))
        >>> path.name
        'gru.onnx'
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end in .onnx, got {str(path)!r}")
    model_proto = onnx_model(model, h0=h0, lengths=lengths)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model_proto.SerializeToString())
    tmp.replace(path)  # atomic: a crash never leaves half a file under the name
    return path
