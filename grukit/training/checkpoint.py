"""Model files and checkpoints: safetensors weights with the model's JSON config in the header,
and, in a checkpoint, the training state beside them.

One file that any safetensors reader opens; reading parses a JSON header and raw
tensors and never unpickles or executes anything. Writes go to a temporary file
in the same folder, are flushed to disk, then renamed over the target, so a
crash never leaves a half-written model where a good one was.

The training state (``capture``/``restore``), so that a killed ``fit`` continues
where it stopped: ``ModelCheckpoint`` writes, next to the weights, the optimizer's
state (tensors, and its hyper-parameters as JSON), the random generators of torch,
NumPy and Python, the state of the callbacks that keep one (EarlyStopping with its
best weights, ReduceLROnPlateau, LearningRateScheduler's torch scheduler,
ModelCheckpoint's best value), the history so far and the last finished epoch.
``fit(..., resume=path)`` loads it all and goes on with the next epoch: with
``gk.set_seed`` the resumed run ends with the weights an uninterrupted run ends
with, bit for bit. Building a model from a file is loading.py's.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import zipfile
from typing import Any, Optional

import numpy as np
import torch

FORMAT = "grukit.Sequential"
VERSION = 1
PREFIX = "__train__/"  # tensor names of a checkpoint's training state; gk.load skips them


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
    """``training``: (tensors, info) of capture(), stored beside the weights."""
    atomic_write(str(path), model_bytes(model, extra, training))


def model_bytes(model: Any, extra: Optional[dict] = None, training: Optional[tuple] = None) -> bytes:
    """The bytes of the file save_model writes."""
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
    return save(tensors, metadata=metadata)


ZIP_MEMBER = "grukit.safetensors"  # grukit's own file inside a Keras .keras zip that grukit wrote


def file_bytes(path: str, role: str) -> bytes:
    """The bytes of a grukit file: the file itself, or the grukit member of a .keras zip that
    grukit wrote (model.save("m.keras") writes both); ``role`` names the argument in errors."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"PK\x03\x04":
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if ZIP_MEMBER in z.namelist():
                return z.read(ZIP_MEMBER)
    except zipfile.BadZipFile:
        pass
    raise KerasZip(f"{role} {path!r} is a zip file, as Keras' .keras model files are, with no grukit model "
                   "inside: a Keras model file loads with gk.load under a name ending in .keras, or "
                   "with gk.interop.load_keras")


class KerasZip(ValueError):
    """A .keras file that Keras wrote: no grukit model inside."""


def read_model_file(path: str) -> tuple[Any, dict]:
    """(the parsed grukit header, the model's tensors) of a file written by ``save_model``;
    ValueError when it is not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path {path!r} is not a file")
    data = file_bytes(path, "path")
    if data[:8] == b"\x89HDF\r\n\x1a\n":
        raise ValueError(f"path {path!r} is an HDF5 file, as Keras' .h5 and .weights.h5 files are: "
                         "gk.interop.load_keras(path, model) reads Keras 3 weights into a model of the same "
                         "layers (a Keras 2 .h5 model: load it in Keras and save it as .keras)")
    try:
        tensors = {k: v for k, v in st_load(data).items() if not k.startswith(PREFIX)}
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
        config = json.loads(header["__metadata__"]["grukit"])
    except (SafetensorError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"path {path!r} is not a grukit model file (expected safetensors with a grukit "
                         f"header; it may be truncated, corrupt or another format): {exc}") from None
    return config, tensors


# ------------------------------------------------------------------ training state

def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


INFO_KEYS = ("epoch", "optimizer", "rng", "callbacks", "history", "history_epochs")


def _names(callbacks: list) -> list[str]:
    """Each callback's key in a checkpoint: its class and how many of that class came before
    ("EarlyStopping.0"), so that a resumed fit may add or drop other callbacks."""
    seen: dict[str, int] = {}
    names = []
    for cb in callbacks:
        cls = type(cb).__name__
        names.append(f"{cls}.{seen.get(cls, 0)}")
        seen[cls] = seen.get(cls, 0) + 1
    return names


def capture(optimizer: torch.optim.Optimizer, callbacks: list, history: Any,
            epoch: int) -> tuple[dict[str, torch.Tensor], dict]:
    """The training state after ``epoch`` finished: (tensors, JSON-able info)."""
    tensors: dict[str, torch.Tensor] = {}
    state = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{PREFIX}opt/{index}/{name}"] = value.detach().cpu().contiguous().clone()
            else:
                opt_scalars.setdefault(str(index), {})[name] = _jsonable(value)
    named = list(zip(_names(callbacks), callbacks, strict=True))
    for key, cb in named:  # e.g. EarlyStopping's best weights
        for name, value in (cb.get_tensors() if hasattr(cb, "get_tensors") else {}).items():
            tensors[f"{PREFIX}cb/{key}/{name}"] = value.detach().cpu().contiguous().clone()
    tensors[PREFIX + "rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # the GPU's generator (dropout there)
        tensors[PREFIX + "rng/cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    keys = np.asarray(np_state[1], dtype=np.uint32).astype(np.int64)  # safetensors has no uint32
    tensors[PREFIX + "rng/numpy"] = torch.from_numpy(keys)
    py_version, py_internal, py_gauss = random.getstate()
    info = {
        "epoch": epoch,
        "optimizer": {"class": type(optimizer).__name__, "param_groups": _jsonable(state["param_groups"]),
                      "scalars": opt_scalars},
        "rng": {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
                "python": [py_version, list(py_internal), py_gauss]},
        "callbacks": {key: _jsonable(cb.get_state()) for key, cb in named if hasattr(cb, "get_state")},
        "history": _jsonable(history.history),
        "history_epochs": list(history.epoch),
    }
    return tensors, info


def restore(optimizer: torch.optim.Optimizer, callbacks: list, history: Any, tensors: dict,
            info: dict) -> int:
    """Put a captured state back; returns the epoch to start from (the one after)."""
    opt = info["optimizer"]
    if opt["class"] != type(optimizer).__name__:
        raise ValueError(f"the checkpoint's optimizer is {opt['class']}, but the model was compiled with "
                         f"{type(optimizer).__name__}: compile it as it was")
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(PREFIX + "opt/"):
            index, name = key[len(PREFIX) + 4:].split("/", 1)
            state.setdefault(int(index), {})[name] = value
    for index, values in opt["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = opt["param_groups"]
    for group in groups:  # JSON turned tuples into lists; torch wants betas as a tuple
        for k, v in group.items():
            if isinstance(v, list) and k != "params":
                group[k] = tuple(v)
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors[PREFIX + "rng/torch"])
    if PREFIX + "rng/cuda" in tensors and torch.cuda.is_available():  # saved on a GPU, resumed on one
        torch.cuda.set_rng_state(tensors[PREFIX + "rng/cuda"])
    kind, pos, has_gauss, cached = info["rng"]["numpy"]
    keys = tensors[PREFIX + "rng/numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    version, internal, gauss = info["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    saved = info["callbacks"]
    for key, cb in zip(_names(callbacks), callbacks, strict=True):
        if saved.get(key) is not None and hasattr(cb, "set_state"):
            cb.set_state(saved[key])
        if hasattr(cb, "set_tensors"):
            start = f"{PREFIX}cb/{key}/"
            cb.set_tensors({k[len(start):]: v for k, v in tensors.items() if k.startswith(start)})
    history.history = {k: list(v) for k, v in info["history"].items()}
    history.epoch = list(info["history_epochs"])
    return int(info["epoch"]) + 1


def read(path: str) -> tuple[dict, dict, dict]:
    """(model weights, training tensors, info) from one read of a checkpoint file;
    ValueError if it is not one or holds no training state."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        data = file_bytes(path, "resume=")
    except KerasZip:
        raise ValueError(f"resume={path!r} is a Keras model file written by Keras: it holds no training "
                         "state (ModelCheckpoint writes one, under a .keras name too)") from None
    try:
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__", {})
        tensors = st_load(data)
    except (SafetensorError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"resume={path!r} is not a grukit checkpoint (it may be truncated, corrupt or "
                         f"another format): {exc}") from None
    if "grukit_train" not in meta:
        raise ValueError(f"resume={path!r} holds a model but no training state: write it with "
                         "callbacks.ModelCheckpoint during fit")
    weights = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
    training = {k: v for k, v in tensors.items() if k.startswith(PREFIX)}
    try:
        info = json.loads(meta["grukit_train"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"resume={path!r}: its training state is not valid JSON (corrupt?): {exc}") from None
    missing = [k for k in INFO_KEYS if not isinstance(info, dict) or k not in info]
    if missing or not isinstance(info["callbacks"], dict):
        raise ValueError(f"resume={path!r} holds a training state this grukit cannot read (written by an "
                         f"older version, or edited; missing {missing or ['callbacks by name']})")
    return weights, training, info
