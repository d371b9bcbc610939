"""``gk.set_seed``: one call seeds every random source a grukit run draws from.

On the CPU a run is then repeatable bit for bit: the same seed, data, settings and
thread count give the same weights. grukit's fused engine splits work over threads
by fixed slices (no atomics, no order-dependent sums), so its results do not depend
on timing; ``deterministic=True`` also asks PyTorch for deterministic algorithms
everywhere else (an operation that has none then raises, on GPUs mostly).
tests/test_seeding.py trains twice in fresh processes and compares the weights.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from . import _checks


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA).

    Example::

        >>> import torch, grukit as gk
        >>> gk.set_seed(7); a = gk.GRU(3, 4).weight_hh_l0.clone()
        >>> gk.set_seed(7); b = gk.GRU(3, 4).weight_hh_l0.clone()
        >>> torch.equal(a, b)
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise TypeError(f"seed must be an int in [0, 2**32), got {_checks.describe(seed)}")
    deterministic = _checks.boolean("deterministic", deterministic)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' deterministic mode
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
