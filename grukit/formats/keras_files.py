"""Keras 3 model files: ``.keras`` (a zip of config.json and model.weights.h5) and
``.weights.h5``, read into a grukit ``Sequential`` or, for a Keras functional model, a
``gk.Model`` (``_functional_from_keras``), and written back (``_functional_to_keras``).

Read with h5py alone: Keras itself is not needed to load or save. Supported
layers: InputLayer, Embedding, Masking, GRU, Bidirectional(GRU), Dense, Dropout, Conv1D,
MaxPooling1D, Flatten, Activation, GlobalAveragePooling1D, GlobalMaxPooling1D, RepeatVector;
in functional models also the merge layers, Attention and AdditiveAttention.
GRU weights are converted as in :mod:`grukit.formats.interop` (gate blocks z, r, h <->
r, z, n); a Keras file read and written back holds the same numbers, bit for bit.

In a weights file each layer's variables sit under ``layers/<kind>`` numbered in
layer order (a functional model's: the order Keras keeps its graph's operations in,
``_keras_layers``) (gru, gru_1, dense, ...; ``.../cell/vars/0..2`` for a GRU,
``forward_layer``/``backward_layer`` inside a Bidirectional), whatever the layers'
own names, in ``.keras`` and ``.weights.h5`` files alike.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .. import _checks
from ..training import checkpoint, functional, optimizers
from ..training import layers as L
from ..training import sequential as sequential_module
from ..training.loading import check_sizes
from ..training.model import Model, display_names
from ..training.sequential import Sequential

PathLike = Union[str, Path]
_KERAS_VERSION = "3.0.0"  # the file format written: Keras 3's


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("reading and writing Keras files needs h5py: pip install -e .[keras] "
                          "(or pip install h5py)") from None
    return h5py


# each layer kind Keras files hold, by Keras' name for it (the weights' group: gru, gru_1, ...)
_KINDS = {L.GRU: "gru", L.Dense: "dense", L.Embedding: "embedding", L.Masking: "masking",
          L.Dropout: "dropout", L.Bidirectional: "bidirectional", L.Input: "input_layer",
          L.Conv1D: "conv1d", L.Flatten: "flatten",
          L.Activation: "activation", L.MaxPooling1D: "max_pooling1d",
          L.GlobalAveragePooling1D: "global_average_pooling1d", L.GlobalMaxPooling1D: "global_max_pooling1d",
          L.RepeatVector: "repeat_vector", L.Add: "add", L.Subtract: "subtract", L.Multiply: "multiply",
          L.Average: "average", L.Maximum: "maximum", L.Minimum: "minimum", L.Concatenate: "concatenate",
          L.Attention: "attention", L.AdditiveAttention: "additive_attention"}
_MERGES = {c.__name__: c for c in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)}
_HELD = ("InputLayer, Embedding, Masking, GRU, Bidirectional, Dense, Dropout, Conv1D, MaxPooling1D, Flatten, "
         "Activation, GlobalAveragePooling1D, GlobalMaxPooling1D, RepeatVector; in functional models also "
         "Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum, Attention, AdditiveAttention")


def _kind(layer: L.Layer) -> str:
    return _KINDS[type(layer)]


def _auto_names(layers: Any) -> list[str]:
    """The names under which Keras 3 files keep each layer's variables: the layer kind,
    numbered from the second of a kind on (gru, gru_1, dense, ...) in the model's layer
    order, whatever the layers' own names in config.json."""
    seen: dict[str, int] = {}
    names = []
    for layer in layers:
        if type(layer) not in _KINDS:
            raise ValueError(f"{type(layer).__name__} is not among the layers grukit reads and writes in "
                             f"Keras files ({_HELD})")
        kind = _kind(layer)
        count = seen.get(kind, 0)
        seen[kind] = count + 1
        names.append(kind if count == 0 else f"{kind}_{count}")
    return names


# ------------------------------------------------------------- weights (h5)

def _read_group(group: Any, path: str, where: str) -> list[np.ndarray]:
    if path not in group:
        raise ValueError(f"{where}: the file has no variables at {group.name}/{path}")
    vars_ = group[path]
    return [np.asarray(vars_[str(i)]) for i in range(len(vars_))]


def _set_layer_vars(layer: L.Layer, group: Any, where: str) -> None:
    layer.set_keras_variables({path: _read_group(group, path, where) for path in layer.keras_variables()},
                              where)


def _write_weights(layers: Any, names: list[str], target: Any) -> None:
    h5py = _h5py()
    with h5py.File(target, "w") as f:
        top = f.create_group("layers")
        for layer, name in zip(layers, names, strict=True):
            if isinstance(layer, L.Input):
                continue
            group = top.create_group(name)
            group.create_group("vars").attrs["name"] = name
            for path, arrays in layer.keras_variables().items():
                sub = group.require_group(path)
                for i, a in enumerate(arrays):
                    sub.create_dataset(str(i), data=a)
        f.create_group("vars").attrs["name"] = "sequential"


def _largest_dimension(weights: bytes) -> int:
    """The largest dimension of any array in a Keras weights file (0 for none)."""
    h5py = _h5py()
    found = [0]

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape:
            found[0] = max(found[0], *obj.shape)

    try:
        with h5py.File(io.BytesIO(weights), "r") as f:
            f.visititems(visit)
    except OSError as exc:
        raise ValueError(f"the .keras file's model.weights.h5 is not a readable HDF5 file: {exc}") from None
    return found[0]


def _read_weights(layers: Any, names: list[str], source: Any) -> None:
    h5py = _h5py()
    with h5py.File(source, "r") as f:
        if "layers" not in f:
            raise ValueError("the file holds no Keras layer weights (no 'layers' group)")
        for i, (layer, name) in enumerate(zip(layers, names, strict=True)):
            if not layer.keras_variables():
                continue
            if name not in f["layers"]:
                raise ValueError(f"layer {i} ({type(layer).__name__}) is {name!r} in a Keras file, but "
                                 f"the file has no such layer; it has {sorted(f['layers'])}")
            _set_layer_vars(layer, f["layers"][name], f"layer {i} ({name})")


# ------------------------------------------------------------- config.json

def _layer_from_keras(entry: dict) -> Optional[L.Layer]:
    layer = _layer_kind_from_keras(entry)
    if layer is not None and entry.get("config", {}).get("trainable") is False:
        layer.trainable = False  # a layer frozen in Keras stays frozen
    return layer


def _layer_kind_from_keras(entry: dict) -> Optional[L.Layer]:
    cls, cfg = entry.get("class_name"), entry.get("config", {})
    if cls == "InputLayer":
        shape = cfg.get("batch_shape") or [None, *cfg.get("shape", [])]
        return L.Input(tuple(shape[1:]), dtype=cfg.get("dtype", "float32") if isinstance(
            cfg.get("dtype"), str) else "float32")
    if cls == "Embedding":
        return L.Embedding(cfg["input_dim"], cfg["output_dim"], mask_zero=cfg.get("mask_zero", False))
    if cls == "Masking":
        return L.Masking(cfg.get("mask_value", 0.0))
    if cls == "Dropout":
        return L.Dropout(cfg.get("rate", 0.0))
    if cls == "Dense":
        activation = cfg.get("activation", "linear")
        if activation not in L.ACTIVATIONS:
            raise ValueError(f"Dense activation {activation!r} has no grukit counterpart; known: "
                             f"{sorted(str(a) for a in L.ACTIVATIONS)}")
        return L.Dense(cfg["units"], activation=activation, use_bias=cfg.get("use_bias", True))
    if cls == "GRU":
        for key, want in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
            if cfg.get(key, want) != want:
                raise ValueError(f"GRU {key} must be {want!r}, got {cfg[key]!r}")
        return L.GRU(cfg["units"], return_sequences=cfg.get("return_sequences", False),
                     return_state=cfg.get("return_state", False), go_backwards=cfg.get("go_backwards", False),
                     stateful=cfg.get("stateful", False), dropout=cfg.get("dropout", 0.0),
                     recurrent_dropout=cfg.get("recurrent_dropout", 0.0),
                     reset_after=cfg.get("reset_after", True), use_bias=cfg.get("use_bias", True),
                     zero_output_for_mask=cfg.get("zero_output_for_mask", False))
    if cls in ("Conv1D", "MaxPooling1D", "Flatten", "GlobalAveragePooling1D", "GlobalMaxPooling1D") \
            and cfg.get("data_format", "channels_last") != "channels_last":
        raise ValueError(f"{cls} with data_format={cfg['data_format']!r}: grukit's layers take (batch, time, "
                         "features), Keras' channels_last")
    if cls == "Conv1D":
        if cfg.get("groups", 1) != 1:
            raise ValueError(f"Conv1D with groups={cfg['groups']} has no grukit counterpart")
        return L.Conv1D(cfg["filters"], cfg["kernel_size"], strides=cfg.get("strides", 1),
                        padding=cfg.get("padding", "valid"), dilation_rate=cfg.get("dilation_rate", 1),
                        activation=_activation(cfg), use_bias=cfg.get("use_bias", True))
    if cls == "MaxPooling1D":
        return L.MaxPooling1D(cfg.get("pool_size", 2), cfg.get("strides"), cfg.get("padding", "valid"))
    if cls == "Flatten":
        return L.Flatten()
    if cls == "Activation":
        return L.Activation(_activation(cfg))
    if cls in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
        if cfg.get("keepdims"):
            raise ValueError(f"{cls} with keepdims=True has no grukit counterpart")
        return L.GlobalAveragePooling1D() if cls == "GlobalAveragePooling1D" else L.GlobalMaxPooling1D()
    if cls == "RepeatVector":
        return L.RepeatVector(cfg["n"])
    if cls in _MERGES:
        return _MERGES[cls]()
    if cls == "Concatenate":
        return L.Concatenate(cfg.get("axis", -1))
    if cls == "Attention":
        return L.Attention(cfg.get("use_scale", False), cfg.get("score_mode", "dot"), cfg.get("dropout", 0.0))
    if cls == "AdditiveAttention":
        return L.AdditiveAttention(cfg.get("use_scale", True), cfg.get("dropout", 0.0))
    if cls == "Bidirectional":
        inner = _layer_from_keras(cfg["layer"])
        if not isinstance(inner, L.GRU):
            raise ValueError(f"Bidirectional must wrap a GRU, got {cfg['layer'].get('class_name')!r}")
        backward = _layer_from_keras(cfg["backward_layer"]) if cfg.get("backward_layer") else None
        if backward is not None and not isinstance(backward, L.GRU):
            raise ValueError(f"Bidirectional's backward_layer must be a GRU, got "
                             f"{cfg['backward_layer'].get('class_name')!r}")
        # Keras writes the backward layer even when it is the forward one run backwards:
        # then one fused bidirectional GRU computes both
        same = backward is not None and {**backward.get_config(), "go_backwards": inner.go_backwards} \
            == inner.get_config()
        return L.Bidirectional(inner, merge_mode=cfg.get("merge_mode", "concat"),
                               backward_layer=None if backward is None or same else backward)
    raise ValueError(f"Keras layer {cls!r} has no grukit counterpart; supported: {_HELD}")


def _activation(cfg: dict) -> Any:
    activation = cfg.get("activation", "linear")
    if activation not in L.ACTIVATIONS:
        raise ValueError(f"activation {activation!r} has no grukit counterpart; known: "
                         f"{sorted(str(a) for a in L.ACTIVATIONS)}")
    return activation


def _layer_to_keras(layer: L.Layer, name: str) -> dict:
    def entry(cls: str, cfg: dict) -> dict:
        return {"module": "keras.layers", "class_name": cls, "config": {"name": name,
                "trainable": layer.trainable, "dtype": "float32", **cfg}, "registered_name": None}

    if isinstance(layer, L.Input):
        dtype = "int32" if layer.dtype.startswith("int") else "float32"
        return {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                "config": {"batch_shape": [None, *layer.shape], "dtype": dtype, "name": name}}
    if isinstance(layer, L.Embedding):
        return entry("Embedding", {"input_dim": layer.input_dim, "output_dim": layer.output_dim,
                                   "mask_zero": layer.mask_zero})
    if isinstance(layer, L.Masking):
        return entry("Masking", {"mask_value": layer.mask_value})
    if isinstance(layer, L.Dropout):
        return entry("Dropout", {"rate": layer.rate})
    if isinstance(layer, L.Dense):
        return entry("Dense", {"units": layer.units, "activation": layer.activation or "linear",
                               "use_bias": layer.use_bias})
    if isinstance(layer, L.GRU):
        if layer.zoneout or layer.layer_norm:
            raise ValueError(f"layer {name!r} uses zoneout or layer_norm, which Keras' GRU does not have")
        return entry("GRU", {"units": layer.units, "return_sequences": layer.return_sequences,
                             "return_state": layer.return_state, "go_backwards": layer.go_backwards,
                             "stateful": layer.stateful, "dropout": layer.dropout,
                             "recurrent_dropout": layer.recurrent_dropout, "reset_after": layer.reset_after,
                             "use_bias": layer.use_bias, "activation": "tanh",
                             "zero_output_for_mask": layer.zero_output_for_mask,
                             "recurrent_activation": "sigmoid"})
    if isinstance(layer, L.Conv1D):
        return entry("Conv1D", {"filters": layer.filters, "kernel_size": [layer.kernel_size],
                                "strides": [layer.strides], "padding": layer.padding,
                                "data_format": "channels_last", "dilation_rate": [layer.dilation_rate],
                                "groups": 1, "activation": layer.activation or "linear",
                                "use_bias": layer.use_bias})
    if isinstance(layer, L.MaxPooling1D):
        return entry("MaxPooling1D", {"pool_size": [layer.pool_size], "strides": [layer.strides],
                                      "padding": layer.padding, "data_format": "channels_last"})
    if isinstance(layer, L.Flatten):
        return entry("Flatten", {"data_format": "channels_last"})
    if isinstance(layer, L.Activation):
        return entry("Activation", {"activation": layer.activation or "linear"})
    if isinstance(layer, (L.GlobalAveragePooling1D, L.GlobalMaxPooling1D)):
        return entry(type(layer).__name__, {"data_format": "channels_last", "keepdims": False})
    if isinstance(layer, L.RepeatVector):
        return entry("RepeatVector", {"n": layer.n})
    if isinstance(layer, L.Concatenate):
        return entry("Concatenate", {"axis": layer.axis})
    if isinstance(layer, L.AdditiveAttention):
        return entry("AdditiveAttention", {"use_scale": layer.use_scale, "dropout": layer.dropout,
                                           "seed": None})
    if isinstance(layer, L.Attention):
        return entry("Attention", {"use_scale": layer.use_scale, "score_mode": layer.score_mode,
                                   "dropout": layer.dropout, "seed": None})
    if type(layer) in _MERGES.values():
        return entry(type(layer).__name__, {})
    if isinstance(layer, L.Bidirectional):  # its inner GRU's settings are Keras' forward layer's
        cfg = {"merge_mode": layer.merge_mode, "layer": _layer_to_keras(layer.layer, "forward_" + name)}
        if layer.backward_layer is not None:
            cfg["backward_layer"] = _layer_to_keras(layer.backward_layer, "backward_" + name)
        return entry("Bidirectional", cfg)
    raise ValueError(f"{type(layer).__name__} has no Keras counterpart")


# ------------------------------------------------------------------ public

def load_keras(path: PathLike, model: Optional[Model] = None) -> Model:
    """A grukit Sequential (or, from a Keras functional model, a gk.Model) from a Keras 3
    ``.keras`` file (architecture and weights), or the weights of a ``.weights.h5`` file loaded
    into ``model`` (built, same layers)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Keras file at {str(path)!r}")
    if path.name.endswith(".weights.h5"):
        if not isinstance(model, Model):
            raise TypeError("model must be a built grukit.Sequential or gk.Model to load a .weights.h5 "
                            f"file into (it holds weights, not layers), got {_checks.describe(model)}")
        if model.input_spec is None:
            raise ValueError("model must be built before loading weights: call it on data or start it "
                             "with layers.Input(shape)")
        layers = _keras_layers(model)
        _read_weights(layers, _auto_names(layers), path)
        return model
    if path.suffix != ".keras":
        raise ValueError(f"path must end in .keras or .weights.h5, got {path.name!r}")
    if model is not None:
        raise ValueError("model must be None for a .keras file: the file holds the architecture")
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            weights = z.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} is not a readable .keras file: {exc}") from None
    if config.get("class_name") == "Functional":
        return _functional_from_keras(config, weights, path)
    if config.get("class_name") != "Sequential":
        raise ValueError(f"only Sequential and functional Keras models can be read, got "
                         f"{config.get('class_name')!r}")
    entries = config["config"]["layers"]
    check_sizes(entries, _largest_dimension(weights), str(path))  # before anything is allocated
    layers = [_layer_from_keras(e) for e in entries]
    if not isinstance(layers[0], L.Input):
        shape = (config.get("build_config") or {}).get("input_shape")
        if shape is None:
            raise ValueError("the Keras model was never built (no input shape); build it before saving")
        layers.insert(0, L.Input(tuple(shape[1:])))
    model = Sequential(layers)
    _read_weights(model.layers, _auto_names(model.layers), io.BytesIO(weights))
    if config.get("compile_config"):
        _compile_from_keras(model, config["compile_config"], path.name)
    return model


# Keras layers whose node in a functional graph lists the mask it was given ("mask" in its kwargs):
# a node of theirs without one ran without a mask (Keras 3 gives none to a layer called with a
# second tensor, such as a GRU's initial_state), and grukit's node then takes none either
_MASK_ARGUMENT = (L.GRU, L.Bidirectional, L.GlobalAveragePooling1D)  # (an Attention's list of masks is
# not listed, and Keras passes it at run time)


def _functional_from_keras(config: dict, weights: bytes, path: Path) -> Model:
    """A gk.Model from a Keras functional model's config.json and weights: its layers (named as
    in Keras), the graph replayed node by node (shared layers, initial_state, merges), the weights
    read under Keras' kind names in the config's layer order. Keras' NotEqual operations (the
    masks of Embedding(mask_zero=True), which grukit computes itself) are the only operations
    taken that are not layers."""
    cfg = config["config"]
    entries = cfg["layers"]
    ops = {e["name"] for e in entries if not str(e.get("module", "")).startswith("keras.layers")}
    for e in entries:
        if e["name"] in ops and e.get("class_name") != "NotEqual":
            raise ValueError(f"{path.name}: the Keras model computes {e.get('class_name')!r} between its "
                             f"layers (a keras.ops operation); grukit reads functional models of layers "
                             f"({_HELD})")
    kept = [e for e in entries if e["name"] not in ops]
    check_sizes(kept, _largest_dimension(weights), str(path))  # before anything is allocated
    layers = {}
    for e in kept:
        layers[e["name"]] = _layer_from_keras(e)
        layers[e["name"]].name = e["name"]
    made: dict[tuple[str, int], list[Any]] = {(name, 0): [functional.source(layer)]
                                              for name, layer in layers.items() if isinstance(layer, L.Input)}
    pending = [(e["name"], i, node) for e in kept if not isinstance(layers[e["name"]], L.Input)
               for i, node in enumerate(e.get("inbound_nodes") or [])]

    def tensor(value: Any) -> Any:
        if isinstance(value, list):
            return [tensor(v) for v in value]
        if not (isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"):
            raise ValueError(f"{path.name}: a layer of the Keras model is called with {value!r}, which "
                             "grukit does not take (layer calls on layers' outputs only)")
        name, node, index = value["config"]["keras_history"]
        if name in ops:
            raise ValueError(f"{path.name}: the output of Keras operation {name!r} is read as data")
        return made[(name, node)][index]  # a KeyError: not made yet

    while pending:
        left = []
        for name, i, node in pending:
            args, kwargs = node.get("args") or [], node.get("kwargs") or {}
            unknown = sorted(set(kwargs) - {"initial_state", "mask", "training", "return_attention_scores",
                                            "use_causal_mask"})
            if len(args) != 1 or unknown or any(kwargs.get(k) for k in ("training", "return_attention_scores",
                                                                       "use_causal_mask")):
                raise ValueError(f"{path.name}: layer {name!r} is called with {len(args)} positional "
                                 f"arguments and keywords {sorted(kwargs)}; grukit takes one input (or a "
                                 "list), initial_state, and the mask and training=False Keras records "
                                 "(not return_attention_scores or use_causal_mask)")
            try:
                x = tensor(args[0])
                state = None if kwargs.get("initial_state") is None else tensor(kwargs["initial_state"])
            except KeyError:
                left.append((name, i, node))
                continue
            layer = layers[name]
            masked = "mask" in kwargs or not isinstance(layer, _MASK_ARGUMENT)
            out = layer(x, initial_state=state, _masked=masked)
            made[(name, i)] = out if isinstance(out, list) else [out]
        if len(left) == len(pending):
            raise ValueError(f"{path.name}: the Keras model's graph reads layers' outputs it never makes "
                             f"(layer {left[0][0]!r})")
        pending = left

    def refs(value: Any) -> Any:
        if value and isinstance(value[0], list):
            return [refs(v) for v in value]
        name, node, index = value
        return made[(name, node)][index]

    inputs, outputs = refs(cfg["input_layers"]), refs(cfg["output_layers"])
    model = Model([v.node.layer for v in (inputs if isinstance(inputs, list) else [inputs])], outputs,
                  name=cfg.get("name"))
    ordered = [layers[e["name"]] for e in kept]  # Keras' weights file numbers them in the config's order
    _read_weights(ordered, _auto_names(ordered), io.BytesIO(weights))
    if config.get("compile_config"):
        _compile_from_keras(model, config["compile_config"], path.name)
    return model


# grukit's optimizer names and Keras' classes of the same optimizers
_KERAS_OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop",
                     "adagrad": "Adagrad", "adamax": "Adamax", "nadam": "Nadam", "adadelta": "Adadelta"}


def _compile_to_keras(model: Model) -> Optional[dict]:
    """Keras' compile_config for a model compiled with names Keras knows (so that Keras'
    load_model gives it compiled), else None."""
    cfg = getattr(model, "compile_config", None) if model.compiled else None
    if not cfg or cfg.get("optimizer") not in _KERAS_OPTIMIZERS or not cfg.get("loss") \
            or len(cfg.get("metrics") or []) != len(model.metric_fns):
        return None
    optimizer: Any = cfg["optimizer"]
    if cfg.get("optimizer_config") or cfg.get("learning_rate") is not None:
        settings = cfg.get("optimizer_config") or {"learning_rate": float(cfg["learning_rate"])}
        optimizer = {"module": "keras.optimizers", "class_name": _KERAS_OPTIMIZERS[optimizer],
                     "config": dict(settings), "registered_name": None}
    return {"optimizer": optimizer, "loss": cfg["loss"], "loss_weights": None,
            "metrics": cfg["metrics"] or None, "weighted_metrics": None, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}


def _compile_from_keras(model: Model, cc: Any, where: str) -> None:
    """Compile ``model`` as a Keras file's compile_config says, where grukit has the same
    optimizer, loss and metrics; else leave it uncompiled, with a warning that says why."""
    def name(item: Any) -> Any:
        return item.get("class_name") if isinstance(item, dict) else item

    try:
        optimizer, rate = name(cc.get("optimizer")), None
        if isinstance(cc.get("optimizer"), dict):  # Keras' class and its arguments
            settings = {k: v for k, v in cc["optimizer"].get("config", {}).items()
                        if k in optimizers.ARGUMENTS and v is not None}
            optimizer = optimizers.from_config(optimizer, settings)
        loss = cc.get("loss")
        settings = loss.get("config", {}) if isinstance(loss, dict) else {}
        if settings.get("from_logits") or settings.get("label_smoothing"):
            raise ValueError(f"the loss takes from_logits/label_smoothing ({settings}), which grukit's "
                             "losses do not")
        metrics = [name(m) for m in cc.get("metrics") or []]
        model.compile(optimizer.lower() if isinstance(optimizer, str) else optimizer, name(loss),
                      metrics or None, learning_rate=rate)
    except (ValueError, TypeError, AttributeError) as exc:
        warnings.warn(f"{where}: the Keras model's compile settings were not taken ({exc}); call "
                      "model.compile before fit", stacklevel=3)


def save_keras(model: Model, path: PathLike, grukit: Optional[bytes] = None) -> Path:
    """Write ``model`` (a Sequential or a functional gk.Model) as a Keras 3 ``.keras`` file
    (loadable by ``keras.models.load_model``) or its weights as ``.weights.h5`` (for
    ``keras_model.load_weights``). Atomic. ``grukit``: grukit's own file of the model
    (``model.save`` gives it), stored in the ``.keras`` zip as one more member, which Keras
    leaves alone and gk.load reads."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a grukit.Sequential or gk.Model, got {_checks.describe(model)}")
    if model.input_spec is None:
        raise ValueError("model must be built before saving: call it on data or start it with "
                         "layers.Input(shape)")
    path = Path(path)
    layers = _keras_layers(model)
    names = _auto_names(layers)
    if not (path.suffix == ".keras" or path.name.endswith(".weights.h5")):
        raise ValueError(f"path must end in .keras or .weights.h5, got {path.name!r}")
    if path.suffix == ".keras":
        if model.graph is not None:
            config = _functional_to_keras(model, layers)
        else:
            entries = [_layer_to_keras(layer, name) for layer, name in zip(layers, names, strict=True)]
            if not isinstance(layers[0], L.Input):
                shape, dtype = model.input_spec
                entries.insert(0, _layer_to_keras(L.Input(tuple([None] + shape[1:]), dtype=dtype),
                                                  "input_layer"))
            config = {"module": "keras", "class_name": "Sequential", "registered_name": None,
                      "config": {"name": "sequential", "trainable": True, "dtype": "float32",
                                 "layers": entries}}
        compiled = _compile_to_keras(model)
        if compiled is not None:
            config["compile_config"] = compiled
    buffer = io.BytesIO()
    _write_weights(layers, names, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".keras":
        meta = {"keras_version": _KERAS_VERSION, "date_saved": "", "producer": "grukit"}
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr("metadata.json", json.dumps(meta))
            z.writestr("config.json", json.dumps(config))
            z.writestr("model.weights.h5", buffer.getvalue())
            if grukit is not None:
                z.writestr(checkpoint.ZIP_MEMBER, grukit)
    else:
        tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path


def _keras_layers(model: Model) -> list[L.Layer]:
    """The model's layers in the order Keras 3 keeps them (its weights file numbers them so):
    a Sequential's as they stand; a functional model's as Keras orders a graph's operations,
    by their depth below the outputs (deepest first), then by when a depth-first walk from the
    outputs first reaches them (keras.src.ops.function.map_graph)."""
    graph = model.graph
    if graph is None:
        return list(model.layers)

    def parents(node: functional.Node) -> list[functional.Node]:
        return [t.node for t in node.inbound()]  # x, then initial_state: Keras' order of arguments

    walked: set[int] = set()
    after: list[functional.Node] = []
    first: dict[int, int] = {}

    def walk(node: functional.Node) -> None:
        if id(node) in walked:
            return
        first.setdefault(id(node.layer), len(first))
        for parent in parents(node):
            walk(parent)
        walked.add(id(node))
        after.append(node)

    for t in graph.outputs:
        walk(t.node)
    node_depth: dict[int, int] = {}
    layer_depth: dict[int, int] = {}
    for node in reversed(after):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        for parent in parents(node):
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for layer in graph.inputs:  # an Input the outputs do not read
        layer_depth.setdefault(id(layer), 0)
        first.setdefault(id(layer), -1)
    return sorted(graph.layers, key=lambda la: (-layer_depth[id(la)], first[id(la)]))


def _functional_to_keras(model: Model, layers: list[L.Layer]) -> dict:
    """Keras 3's config.json of a functional model: each layer with the nodes it makes (its
    inputs as Keras tensors: [layer name, node, output]), the inputs and outputs. A decoder's
    mask, which Keras 3 does not pass to a layer called with initial_state, is written as
    Keras writes one given explicitly: a NotEqual(ids, 0) operation, where it comes from an
    Embedding(mask_zero=True) of an Input; any other mask there is refused."""
    graph = model.graph
    names = display_names(graph.layers)
    if len(set(names.values())) != len(names):
        raise ValueError(f"layer names must be unique in a Keras file, got {sorted(names.values())}")
    index: dict[int, int] = {}
    counts: dict[int, int] = {}
    for node in graph.nodes:
        index[id(node)] = counts.get(id(node.layer), 0)
        counts[id(node.layer)] = index[id(node)] + 1

    def ref(t: functional.KerasTensor) -> dict:
        history = [names[id(t.node.layer)], index[id(t.node)], t.index]
        return {"class_name": "__keras_tensor__", "config": {
            "shape": list(t.shape), "dtype": "int32" if t.dtype == "int64" else "float32",
            "keras_history": history}}

    def refs(value: Any) -> Any:
        return [ref(t) for t in value] if isinstance(value, list) else ref(value)

    ops: list[dict] = []

    def explicit_mask(node: functional.Node) -> Optional[dict]:
        """Keras' mask argument for a node that takes its input's mask but that Keras 3 would call
        without one (a layer given initial_state), or None where Keras passes it on itself."""
        x = node.x
        if node.initial_state is None or not node.masked or isinstance(x, list) or x.masks[0] is None:
            return None
        source = x.node
        if not (isinstance(source.layer, L.Embedding) and isinstance(source.x, functional.KerasTensor)
                and isinstance(source.x.node.layer, L.Input)):
            raise ValueError(f"layer {names[id(node.layer)]!r} is called with initial_state on a masked "
                             "sequence whose mask does not come straight from an Embedding(mask_zero=True) "
                             "of an Input: Keras 3 would run it without the mask")
        name = f"{names[id(node.layer)]}_mask"  # not Keras' own op names (not_equal, ...): those it makes
        ops.append({"module": "keras.src.ops.numpy", "class_name": "NotEqual", "config": {"name": name},
                    "registered_name": "NotEqual", "name": name,
                    "inbound_nodes": [{"args": [ref(source.x), 0], "kwargs": {}}]})
        return {"class_name": "__keras_tensor__", "config": {"shape": list(source.x.shape), "dtype": "bool",
                                                             "keras_history": [name, 0, 0]}}

    entries = []
    for layer in layers:
        entry = _layer_to_keras(layer, names[id(layer)])
        nodes = []
        for node in (n for n in graph.nodes if n.layer is layer and n.x is not None):
            kwargs: dict[str, Any] = {}
            if node.initial_state is not None:
                kwargs["initial_state"] = refs(node.initial_state)
            mask = explicit_mask(node)
            if mask is not None:
                kwargs["mask"] = mask
            nodes.append({"args": [refs(node.x)], "kwargs": kwargs})
        entries.append({**entry, "name": names[id(layer)], "inbound_nodes": nodes})
    inputs = [[names[id(la)], 0, 0] for la in graph.inputs]
    outputs = [ref(t)["config"]["keras_history"] for t in graph.outputs]
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "registered_name": "Functional", "config": {"name": model.name or "functional", "trainable": True,
                       "layers": entries + ops,  # Keras makes each node once what it reads is made
                       "input_layers": inputs[0] if len(inputs) == 1 else inputs,
                       "output_layers": outputs[0] if graph.single_output else outputs},
            "build_config": {"input_shape": None}}


# Sequential.save_weights / load_weights with a ".weights.h5" path write and read Keras 3's file,
# model.save(".keras") a Keras model file (with grukit's inside) and gk.load a Keras-written one
sequential_module.WEIGHTS_FILES[".weights.h5"] = (save_keras, load_keras)
sequential_module.MODEL_FILES[".keras"] = (save_keras, load_keras)
