"""``gk.load``: the model a grukit file describes, built from its JSON header and weights."""

from __future__ import annotations

from typing import Any

import torch

from . import checkpoint
from . import layers as L
from .sequential import Sequential


def load(path: str) -> Sequential:
    """Read a model written by ``model.save``: layers, weights and compile settings."""
    path = str(path)
    config, tensors = checkpoint.read_model_file(path)
    try:
        return _build(config, tensors, path)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(f"path {path!r}"):
            raise
        raise ValueError(f"path {path!r} holds a grukit header that does not describe a model grukit can "
                         f"build (corrupt or edited?): {type(exc).__name__}: {exc}") from None


def _build(config: Any, tensors: dict, path: str) -> Any:
    """The model a parsed grukit header describes, with its weights."""
    if not isinstance(config, dict):
        raise TypeError(f"the grukit header must be a JSON object, got {type(config).__name__}")
    if config.get("format") != checkpoint.FORMAT:
        raise ValueError(f"path {path!r} holds format {config.get('format')!r}, "
                         f"expected {checkpoint.FORMAT!r}")
    if config.get("version", 0) > checkpoint.VERSION:
        raise ValueError(f"path {path!r} was written by a newer grukit (format version {config['version']})")
    spec = config["model"]
    model = Sequential([L.from_config(item["class_name"], item["config"]) for item in spec["layers"]])
    if spec.get("input_spec"):
        dtype = torch.long if spec["input_spec"]["dtype"].startswith("int") else torch.float32
        model.build_from(torch.zeros((1, *spec["input_spec"]["shape"]), dtype=dtype))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"path {path!r}: weights do not fit the stored architecture: {exc}") from None
    model.extra = config.get("extra")  # what the writer added, e.g. grukit train's settings
    comp = config.get("compile")
    if comp and comp.get("optimizer") and comp.get("loss"):
        model.compile(comp["optimizer"], comp["loss"], comp.get("metrics") or None, comp.get("learning_rate"))
    return model
