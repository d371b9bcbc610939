"""Model files: safetensors weights with the model's JSON config in the header.

One file that any safetensors reader opens; loading parses a JSON header and raw
tensors and never unpickles or executes anything. Writes go to a temporary file
in the same folder, are flushed to disk, then renamed over the target, so a
crash never leaves a half-written model where a good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Optional

import torch

FORMAT = "grukit.Sequential"
VERSION = 1
TRAINING_PREFIX = "__train__/"  # a checkpoint's training state (resume.py), not weights


def atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".grukit", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model(model: Any, path: str, extra: Optional[dict] = None, training: Optional[tuple] = None) -> None:
    """``training``: (tensors, info) of resume.capture, stored beside the weights."""
    from safetensors.torch import save

    if model.input_spec is None:
        raise ValueError("the model has no weights yet: call it, fit it or give it layers.Input first")
    config = {"format": FORMAT, "version": VERSION, "model": model.get_config(),
              "compile": getattr(model, "compile_config", None), "extra": extra}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"grukit": json.dumps(config)}
    if training is not None:
        tensors.update(training[0])
        metadata["grukit_train"] = json.dumps(training[1])
    atomic_write(str(path), save(tensors, metadata=metadata))


def load(path: str) -> Any:
    """Read a model written by ``model.save``: layers, weights and compile settings."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path {path!r} is not a file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        tensors = {k: v for k, v in st_load(data).items() if not k.startswith(TRAINING_PREFIX)}
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        config = json.loads(header["__metadata__"]["grukit"])
    except (SafetensorError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"path {path!r} is not a grukit model file (expected safetensors with a grukit "
                         f"header; it may be truncated, corrupt or another format): {exc}") from None
    try:
        return _build(config, tensors, path)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(f"path {path!r}"):
            raise
        raise ValueError(f"path {path!r} holds a grukit header that does not describe a model grukit can "
                         f"build (corrupt or edited?): {type(exc).__name__}: {exc}") from None


def _build(config: Any, tensors: dict, path: str) -> Any:
    """The model a parsed grukit header describes, with its weights."""
    from . import layers as L
    from .model import Sequential

    if not isinstance(config, dict):
        raise TypeError(f"the grukit header must be a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise ValueError(f"path {path!r} holds format {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("version", 0) > VERSION:
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
