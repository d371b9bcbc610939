"""``gk.load``: the model a grukit file describes, built from its JSON header and weights."""

from __future__ import annotations

from typing import Any

import torch

from . import checkpoint, functional, optimizers, placement
from . import layers as L
from .model import MODEL_FILES, Model
from .sequential import Sequential


def load(path: str, device: Any = "auto") -> Model:
    """Read a model written by ``model.save``: layers, weights and compile settings. The
    file holds no device: the model goes to ``device`` ("auto": a GPU when there is one;
    "cpu", "cuda", "cuda:N"), wherever it was saved. A ``.keras`` file that Keras wrote is
    read as gk.interop.load_keras reads it (layers, weights and the compile settings grukit
    has too)."""
    path = str(path)
    device = placement.check("device", device)
    try:
        config, tensors = checkpoint.read_model_file(path)
    except checkpoint.KerasZip:
        if ".keras" not in MODEL_FILES or not path.endswith(".keras"):
            raise
        model = MODEL_FILES[".keras"][1](path)  # a model Keras wrote
        model.device_spec = device
        model._place()
        return model
    try:
        return _build(config, tensors, path, device)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(f"path {path!r}"):
            raise
        raise ValueError(f"path {path!r} holds a grukit header that does not describe a model grukit can "
                         f"build (corrupt or edited?): {type(exc).__name__}: {exc}") from None


def _build(config: Any, tensors: dict, path: str, device: str = "auto") -> Any:
    """The model a parsed grukit header describes, with its weights."""
    if not isinstance(config, dict):
        raise TypeError(f"the grukit header must be a JSON object, got {type(config).__name__}")
    if config.get("format") != checkpoint.FORMAT:
        raise ValueError(f"path {path!r} holds format {config.get('format')!r}, "
                         f"expected {checkpoint.FORMAT!r}")
    if config.get("version", 0) > checkpoint.VERSION:
        raise ValueError(f"path {path!r} was written by a newer grukit (format version {config['version']})")
    spec = config["model"]
    _check_sizes(spec, tensors, path)
    layers = [L.from_config(item["class_name"], item["config"]) for item in spec["layers"]]
    if "graph" in spec:  # a functional model: the graph replayed on the layers
        inputs, outputs = functional.rebuild(layers, spec["graph"])
        model: Model = Model(inputs, outputs, device=device)
        model.build_from(None)
    else:
        model = Sequential(layers, device=device)
    if "graph" not in spec and spec.get("input_spec"):
        dtype = torch.long if spec["input_spec"]["dtype"].startswith("int") else torch.float32
        stored = spec["input_spec"]["shape"]  # _check_sizes bounded its length where weights depend on it
        shape = [model.build_steps(stored[0] if len(stored) > 1 else None), *stored[1:]]
        model.build_from(torch.zeros((1, *shape), dtype=dtype))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"path {path!r}: weights do not fit the stored architecture: {exc}") from None
    model.extra = config.get("extra")  # what the writer added, e.g. grukit train's settings
    comp = config.get("compile")
    if comp and comp.get("optimizer") and comp.get("loss"):
        optimizer = comp["optimizer"]
        if comp.get("optimizer_config"):  # a gk.optimizers object: its class and arguments
            optimizer = optimizers.from_config(optimizer, comp["optimizer_config"])
        model.compile(optimizer, comp["loss"], comp.get("metrics") or None, comp.get("learning_rate"))
    return model


SIZE_FIELDS = ("units", "input_dim", "output_dim")


def check_sizes(layers: Any, largest: int, path: str) -> None:
    """Refuse layer configs whose sizes no stored tensor backs, before anything is allocated:
    a layer of ``units`` (or ``input_dim``, ``output_dim``) holds a weight with a dimension
    at least that large, so a larger value is a corrupt or crafted file, not a model.
    ``layers``: [{"class_name", "config"}] as grukit and Keras write them (wrapped layers
    nested); ``largest``: the largest dimension of any tensor in the file."""

    def sizes(config: Any, where: str) -> None:
        if not isinstance(config, dict):
            return
        for field in SIZE_FIELDS:
            value = config.get(field)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"path {path!r}: {where} field {field} must be a positive int, "
                                 f"got {value!r}")
            if value > largest:
                raise ValueError(f"path {path!r}: {where} field {field}={value} is larger than any "
                                 f"tensor stored in the file (largest dimension {largest}): a corrupt or "
                                 "crafted header")
        sizes(config.get("layer"), where + " (wrapped layer)")
        sizes(config.get("config"), where)

    if not isinstance(layers, list):
        raise ValueError(f"path {path!r}: the model's layers must be a list, got {type(layers).__name__}")
    for i, item in enumerate(layers):
        name = item.get("class_name") if isinstance(item, dict) else item
        sizes(item, f"layer {i} ({name!r})")


def _check_sizes(spec: Any, tensors: dict, path: str) -> None:
    """check_sizes for a grukit header, and its input_spec's feature sizes."""
    largest = max((max(t.shape, default=1) for t in tensors.values()), default=0)
    check_sizes(spec["layers"], largest, path)
    input_spec = spec.get("input_spec")
    if input_spec:
        shape = input_spec.get("shape") if isinstance(input_spec, dict) else None
        if (not isinstance(shape, list) or not shape or
                not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)):
            raise ValueError(f"path {path!r}: input_spec shape must be a list of positive ints, "
                             f"got {shape!r}")
        if any(s > largest for s in shape[1:]):
            raise ValueError(f"path {path!r}: input_spec shape {shape} has a feature size larger than any "
                             f"tensor stored in the file (largest dimension {largest})")
        flat = any(isinstance(item, dict) and item.get("class_name") == "Flatten" for item in spec["layers"])
        if flat and shape[0] > largest:  # the build pass runs this many steps; a Dense after it holds T * F
            raise ValueError(f"path {path!r}: input_spec length {shape[0]} is larger than any tensor stored "
                             f"in the file (largest dimension {largest}), which a Flatten's Dense would hold")
