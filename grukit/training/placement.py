"""Where a model trains and predicts: ``device="auto"`` (CUDA when there is a GPU, as
Keras does; under torchrun the process's own GPU, cuda:LOCAL_RANK), "cpu", "cuda" or
"cuda:N". Batches are moved there as they are drawn, from pinned memory without
blocking."""

from __future__ import annotations

import os
from typing import Any, Optional

import torch
from torch import Tensor

DEVICE_HELP = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def check(name: str, spec: Any) -> str:
    """The device spec as a string, or a ValueError/TypeError naming ``name``."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise TypeError(f"{name} must be {DEVICE_HELP}, got {type(spec).__name__} {spec!r}")
    spec = spec.strip().lower()
    if spec in ("auto", "cpu"):
        return spec
    try:
        device = torch.device(spec)
    except RuntimeError:
        device = None
    if device is None or device.type != "cuda":
        raise ValueError(f"{name} must be {DEVICE_HELP}, got {spec!r}")
    return spec


def resolve(spec: str, name: str = "device") -> torch.device:
    """The torch.device for a checked spec; a ValueError when it names a GPU that is not there."""
    if spec == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = os.environ.get("LOCAL_RANK")
        if local is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return torch.device("cuda", int(local) % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={spec!r} needs a CUDA GPU, and torch sees none here "
                             f"(torch {torch.__version__}; use device='cpu' or 'auto')")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"{name}={spec!r}: there are {torch.cuda.device_count()} CUDA device(s), "
                             f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return torch.device("cuda", index)
    return device


def move(t: Optional[Tensor], device: torch.device) -> Optional[Tensor]:
    """t on device: from pinned memory without blocking when it goes from the CPU to a GPU."""
    if t is None or t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
