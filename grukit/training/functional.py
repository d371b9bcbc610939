"""Keras' functional API: layers called on symbolic tensors make a graph, which
``gk.Model(inputs, outputs)`` runs.

    >>> import grukit as gk
    >>> from grukit import layers
    >>> inputs = layers.Input((None, 3))
    >>> seq, state = layers.GRU(8, return_sequences=True, return_state=True)(inputs)
    >>> outputs = layers.Dense(1)(layers.concatenate([layers.GlobalAveragePooling1D()(seq), state]))
    >>> model = gk.Model(inputs, outputs)
    >>> outputs.shape
    (None, 1)

A ``layers.Input`` stands for the data; calling a layer on it (or on what another layer
gave) records the call as a ``Node`` and gives ``KerasTensor``s: the layer's outputs, one
per output (a GRU with ``return_state`` gives two). Each call also runs the layer once on
small probe batches, as Keras traces its graph: that builds the layer's weights (drawn then,
as in Keras) and gives each output's shape. A time axis the Input leaves free (None) is
probed at two lengths, so that an output axis that follows it shows as None too, and a
layer whose weights would depend on it (a Dense after a Flatten) is refused then, not at
fit. Masks travel along the graph as in Keras: an Embedding(mask_zero=True) or Masking
output carries one to the layers that read it. ``Graph`` holds what ``gk.Model`` keeps:
the nodes in the order they were made (an order in which each node's inputs come first),
and runs them on real tensors.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional, Union

import torch
from torch import Tensor

from .. import _checks
from . import layers as L

PROBE_STEPS = (16, 17)  # the lengths a free time axis is probed at: an output axis that changes is free
_made = itertools.count()  # the order in which nodes are made


class Node:
    """One call of a layer in a graph: the layer, what it read (``x``: one KerasTensor or a
    list of them; ``initial_state``: None, one or a list), how many outputs it gave, and
    whether x's mask reaches it (``masked``: False only for nodes read from a Keras file
    whose layer Keras 3 called without one: formats/keras_files.py)."""

    def __init__(self, layer: L.Layer, x: Any, initial_state: Any, outputs: int, masked: bool = True) -> None:
        self.layer, self.x, self.initial_state, self.outputs = layer, x, initial_state, outputs
        self.masked = masked
        self.order = next(_made)
        self.tensors: list[KerasTensor] = []  # its outputs, once made

    def inbound(self) -> list["KerasTensor"]:
        """The KerasTensors this node reads, x's first."""
        return [*_flat(self.x), *_flat(self.initial_state)]


class KerasTensor:
    """A symbolic tensor: an output of a layer in a graph (or an Input's data). ``shape``
    has None for the batch and for an axis that follows a free time axis; ``dtype`` is
    "float32" or "int64". It holds no data: pass it to layers, and to gk.Model."""

    _keras_symbolic = True

    def __init__(self, node: Node, index: int, probes: list[Tensor], masks: list[Optional[Tensor]]) -> None:
        self.node, self.index = node, index
        self.probes, self.masks = probes, masks  # one per probe length

    @property
    def shape(self) -> tuple[Optional[int], ...]:
        a, b = (p.shape for p in self.probes)
        return (None, *(x if x == y else None for x, y in zip(a[1:], b[1:], strict=True)))

    @property
    def dtype(self) -> str:
        return "float32" if self.probes[0].is_floating_point() else "int64"

    @property
    def name(self) -> str:
        kind = kind_name(self.node.layer)
        return f"{kind}:{self.index}" if self.node.outputs > 1 else kind

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, from {self.name}>"

    def __bool__(self) -> bool:
        raise TypeError("a KerasTensor has no value: it stands for a layer's output in a functional "
                        "model (gk.Model(inputs, outputs) runs the graph)")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a KerasTensor has no value to make an array of: build gk.Model(inputs, outputs) "
                        "and call or predict it on data")


def kind_name(layer: L.Layer) -> str:
    """A layer as summaries and errors name it: its name, else its kind."""
    return layer.name or type(layer).__name__


def source(layer: L.Input) -> KerasTensor:
    """The KerasTensor an Input stands for (made on first use, then the same one)."""
    found = getattr(layer, "_keras_tensor", None)
    if found is None:
        probes = []
        for steps in PROBE_STEPS:
            shape = [(steps if i == 0 else 1) if d is None else d for i, d in enumerate(layer.shape)]
            ids = layer.dtype.startswith("int")
            probes.append(torch.ones((1, *shape), dtype=torch.long) if ids else torch.full((1, *shape), 0.5))
        found = KerasTensor(Node(layer, None, None, 1), 0, probes, [None, None])
        found.node.tensors = [found]
        layer.__dict__.setdefault("_keras_nodes", []).append(found.node)
        object.__setattr__(layer, "_keras_tensor", found)  # not a module attribute: nothing to save
    return found


def _symbolic(name: str, value: Any) -> Union[KerasTensor, list[KerasTensor]]:
    if isinstance(value, L.Input):
        return source(value)
    if isinstance(value, KerasTensor):
        return value
    if isinstance(value, (list, tuple)) and value:
        return [_symbolic(name, v) for v in value]  # type: ignore[misc]
    raise TypeError(f"{name} of a layer called in a functional model must be a layers.Input or another "
                    f"layer's output (a KerasTensor), or a list of them, got {_checks.describe(value)}")


def _flat(value: Any) -> list[KerasTensor]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _joined(pairs: list[tuple[Any, Any]]) -> tuple[list, Any]:
    """(tensor, mask) pairs of a list input as the layer reads them: the tensors, and the masks
    (None where no tensor has one)."""
    masks = [m for _, m in pairs]
    return [t for t, _ in pairs], (None if all(m is None for m in masks) else masks)


def _values(value: Any, k: int) -> Any:
    """Probe k of a KerasTensor (or a list of them), and its mask."""
    if isinstance(value, list):
        return _joined([(v.probes[k], v.masks[k]) for v in value])
    return value.probes[k], value.masks[k]


def cast_for(layer: L.Layer, x: Any) -> Any:
    """An Embedding reads token ids (float ids are cast, as Keras does); other layers read floats
    (integer features are numbers to them, as in Keras and Sequential)."""
    if isinstance(x, list):
        return [cast_for(layer, v) for v in x]
    if isinstance(layer, L.Embedding):
        return x.long() if x.is_floating_point() else x
    return x if x.is_floating_point() else x.float()


def split(layer: L.Layer, out: Any, mask: Optional[Tensor]) -> list[tuple[Tensor, Optional[Tensor]]]:
    """A layer's result as (tensor, mask) outputs: one, or one per member of a tuple (a GRU's
    output and state), the mask going with the members that are sequences of its length."""
    if not isinstance(out, (tuple, list)):
        return [(out, mask)]
    return [(t, mask if mask is not None and t.dim() >= 3 and t.shape[1] == mask.shape[1] else None)
            for t in out]


def call(layer: L.Layer, x: Any, mask: Any = None, initial_state: Any = None, _masked: bool = True,
         **unknown: Any) -> Union[KerasTensor, list[KerasTensor]]:
    """``layer(x)`` in a functional model: the node, run on the probes; its output(s).
    ``_masked=False`` (for files Keras wrote): x's mask does not reach this layer."""
    what = f"{type(layer).__name__}"
    if unknown:
        raise TypeError(f"{what}() called in a functional model got an unexpected keyword argument "
                        f"{sorted(unknown)[0]!r} (it takes x and, for a GRU, initial_state)")
    if mask is not None:
        raise TypeError(f"{what}() called in a functional model takes no mask=: masks come from the layers "
                        "that make them (Embedding(mask_zero=True), Masking) along the graph")
    if isinstance(layer, L.Input):
        raise TypeError("a layers.Input is where a functional model starts: call other layers on it, "
                        "not it on a tensor")
    xs = _symbolic("x", x)
    states = None if initial_state is None else _symbolic("initial_state", initial_state)
    results = []
    flags = [(m, m.training) for m in layer.modules()]
    layer.eval()  # the probes are no training step: no dropout draws
    try:
        with torch.no_grad():
            for k in range(len(PROBE_STEPS)):
                value, masks = _values(xs, k)
                masks = masks if _masked else None
                kwargs = {} if states is None else {"initial_state": _values(states, k)[0]}
                try:
                    out, out_mask = layer(cast_for(layer, value), masks, **kwargs)
                except (ValueError, RuntimeError, TypeError, IndexError) as exc:
                    shapes = [t.shape for t in _flat(xs)]
                    raise ValueError(f"{what} cannot read {shapes[0] if len(shapes) == 1 else shapes}"
                                     f"{_free_axis_hint(xs)}: {exc}") from None
                results.append(split(layer, out, out_mask))
    finally:
        for m, was in flags:
            m.training = was
        layer.reset_states()  # a stateful layer starts its real calls from zeros
    node = Node(layer, xs, states, len(results[0]), masked=_masked)
    outputs = [KerasTensor(node, i, [r[i][0] for r in results], [r[i][1] for r in results])
               for i in range(node.outputs)]
    node.tensors = outputs
    layer.__dict__.setdefault("_keras_nodes", []).append(node)  # layer.output reads it
    return outputs[0] if node.outputs == 1 else outputs


def _free_axis_hint(xs: Any) -> str:
    free = any(d is None for t in _flat(xs) for d in t.shape[1:])
    return (f" (a free time axis, None, is probed at lengths {PROBE_STEPS[0]} and {PROBE_STEPS[1]}: a layer "
            "whose weights depend on the length, such as a Dense after a Flatten, needs it declared in "
            "layers.Input)") if free else ""


L.FUNCTIONAL_CALL[:] = [call]


class Graph:
    """What a functional model runs: its Input layers, the nodes between them and the outputs
    (in the order they were made), and the distinct layers in order of first use."""

    def __init__(self, inputs: Any, outputs: Any) -> None:
        self.inputs = [_input_layer(v) for v in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
        if not self.inputs:
            raise ValueError("inputs must hold at least one layers.Input")
        if len(set(map(id, self.inputs))) != len(self.inputs):
            raise ValueError("inputs holds one layers.Input twice")
        self.single_output = not isinstance(outputs, (list, tuple))
        outs = [outputs] if self.single_output else list(outputs)
        if not outs:
            raise ValueError("outputs must hold at least one layer output")
        self.outputs = [source(v) if isinstance(v, L.Input) else v for v in outs]
        for v in self.outputs:
            if not isinstance(v, KerasTensor):
                raise TypeError(f"outputs must be layer outputs (KerasTensors) of the graph, got "
                                f"{_checks.describe(v)}")
        reached: dict[int, Node] = {}
        todo = [t.node for t in self.outputs] + [source(layer).node for layer in self.inputs]  # read or not
        while todo:
            node = todo.pop()
            if id(node) not in reached:
                reached[id(node)] = node
                todo.extend(t.node for t in node.inbound())
        self.nodes = sorted(reached.values(), key=lambda n: n.order)
        # (ids key only dicts made and used at once: a deep copy of the model, gk.quantize's, has others)
        input_index = {id(layer): i for i, layer in enumerate(self.inputs)}
        for node in self.nodes:
            if isinstance(node.layer, L.Input) and id(node.layer) not in input_index:
                raise ValueError(f"outputs depend on a layers.Input that is not in inputs "
                                 f"(shape {node.layer.shape}): pass every Input the outputs read")
        last = len(self.inputs)
        self.nodes.sort(key=lambda n: (input_index.get(id(n.layer), last), n.order))  # the inputs first
        self.layers = list({id(node.layer): node.layer for node in self.nodes}.values())  # first use

    def run(self, inputs: list[Tensor]) -> list[tuple[Tensor, Optional[Tensor]]]:
        """The outputs (and their masks) for one tensor per Input."""
        values: dict[int, list[tuple[Tensor, Optional[Tensor]]]] = {}
        input_index = {id(layer): i for i, layer in enumerate(self.inputs)}

        def read(v: Any) -> tuple[Any, Any]:
            if isinstance(v, list):
                return _joined([values[id(t.node)][t.index] for t in v])
            return values[id(v.node)][v.index]

        for node in self.nodes:
            if node.x is None:  # an Input
                values[id(node)] = [(inputs[input_index[id(node.layer)]], None)]
                continue
            x, mask = read(node.x)
            mask = mask if node.masked else None
            kwargs = {} if node.initial_state is None else {"initial_state": read(node.initial_state)[0]}
            out, out_mask = node.layer(cast_for(node.layer, x), mask, **kwargs)
            values[id(node)] = split(node.layer, out, out_mask)
        return [values[id(t.node)][t.index] for t in self.outputs]

    def config(self) -> dict[str, Any]:
        """The graph by positions (layers in ``self.layers``' order, nodes in ``self.nodes``')."""
        index = {id(la): i for i, la in enumerate(self.layers)}
        position = {id(node): i for i, node in enumerate(self.nodes)}

        def ref(t: KerasTensor) -> list[int]:
            return [position[id(t.node)], t.index]

        def refs(v: Any) -> Any:
            return None if v is None else [ref(t) for t in v] if isinstance(v, list) else ref(v)

        nodes = [{"layer": index[id(n.layer)], "x": refs(n.x), "initial_state": refs(n.initial_state),
                  **({} if n.masked else {"masked": False})} for n in self.nodes]
        return {"nodes": nodes,
                "inputs": [index[id(la)] for la in self.inputs],
                "outputs": refs(self.outputs[0] if self.single_output else self.outputs)}


def _input_layer(value: Any) -> L.Input:
    if isinstance(value, L.Input):
        return value
    if isinstance(value, KerasTensor) and isinstance(value.node.layer, L.Input):
        return value.node.layer
    raise TypeError(f"inputs must be layers.Input objects (or a list of them), got {_checks.describe(value)}")


def cut(inputs: Any, outputs: Any) -> tuple[Any, Any]:
    """Keras' functional slicing: a model whose inputs are tensors from a graph's middle (say
    ``layer.input``) reads them from fresh Inputs of their shapes, and the layers between are
    called again on those (the same layers, so the same weights; a cut tensor's mask is not
    kept, as in Keras). Inputs that are already Inputs are kept; (inputs, outputs) to build on."""
    given = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    if all(not isinstance(v, KerasTensor) or isinstance(v.node.layer, L.Input) for v in given):
        return inputs, outputs
    fresh: dict[tuple[int, int], KerasTensor] = {}
    new_inputs = []
    for v in given:
        if isinstance(v, KerasTensor) and not isinstance(v.node.layer, L.Input):
            shape = v.shape[1:]
            made = source(L.Input(shape, dtype="int64" if v.dtype == "int64" else "float32"))
            fresh[(id(v.node), v.index)] = made
            new_inputs.append(made.node.layer)
        else:
            new_inputs.append(v)
    outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    needed: dict[int, Node] = {}
    todo = [t for t in outs if isinstance(t, KerasTensor)]
    while todo:
        t = todo.pop()
        if (id(t.node), t.index) in fresh or id(t.node) in needed:
            continue
        needed[id(t.node)] = t.node
        todo.extend(t.node.inbound())
    made_by: dict[int, list[KerasTensor]] = {}

    def mapped(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, list):
            return [mapped(t) for t in v]
        key = (id(v.node), v.index)
        return fresh[key] if key in fresh else made_by.get(id(v.node), v.node.tensors)[v.index]

    for node in sorted(needed.values(), key=lambda n: n.order):
        if node.x is None:  # an Input the outputs read besides the cut
            continue
        out = call(node.layer, mapped(node.x), initial_state=mapped(node.initial_state), _masked=node.masked)
        made_by[id(node)] = out if isinstance(out, list) else [out]
    new_outputs = [mapped(t) if isinstance(t, KerasTensor) else t for t in outs]
    return new_inputs, (new_outputs if isinstance(outputs, (list, tuple)) else new_outputs[0])


def rebuild(layers: list[L.Layer], config: dict[str, Any]) -> tuple[list[L.Input], Any]:
    """Replay a graph's config on fresh layers: (inputs, outputs) for gk.Model."""
    made: list[list[KerasTensor]] = []

    def resolve(r: Any) -> Any:
        if r is None:
            return None
        if r and isinstance(r[0], list):
            return [resolve(one) for one in r]
        node, index = r
        return made[node][index]

    for spec in config["nodes"]:
        layer = layers[spec["layer"]]
        if spec["x"] is None:
            if not isinstance(layer, L.Input):
                raise ValueError(f"node of layer {spec['layer']} ({type(layer).__name__}) reads nothing")
            made.append([source(layer)])
            continue
        state = resolve(spec["initial_state"])
        out = call(layer, resolve(spec["x"]), initial_state=state, _masked=spec.get("masked", True))
        made.append(out if isinstance(out, list) else [out])
    return [layers[i] for i in config["inputs"]], resolve(config["outputs"])
