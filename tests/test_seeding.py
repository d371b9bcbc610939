"""gk.set_seed: the same seed gives the same trained weights, bit for bit, in fresh
processes (random data, shuffling, dropout, zoneout and recurrent dropout included)."""

import subprocess
import sys

import pytest
import torch

import grukit as gk

pytestmark = pytest.mark.slow  # subprocesses: `pytest -m 'not slow'` skips them

TRAIN = """
import hashlib, sys
import numpy as np, torch
import grukit as gk
from grukit import layers as L
torch.set_num_threads(2)
gk.set_seed(int(sys.argv[1]))
x = np.random.normal(size=(96, 12, 3)).astype("float32")
x[::5, 8:] = 0
y = (x[:, :, 0].sum(1, keepdims=True) > 0).astype("float32")
model = gk.Sequential([L.Input((None, 3)), L.Masking(0.0),
                       L.Bidirectional(L.GRU(16, return_sequences=True, recurrent_dropout=0.2)),
                       L.Dropout(0.3), L.GRU(8, zoneout=0.1), L.Dense(1, activation="sigmoid")])
model.compile("adam", "binary_crossentropy")
model.fit(x, y, epochs=3, batch_size=16, verbose=0)
digest = hashlib.sha256()
for p in model.parameters():
    digest.update(p.detach().numpy().tobytes())
print(digest.hexdigest())
"""


def _train(seed: int) -> str:
    out = subprocess.run([sys.executable, "-c", TRAIN, str(seed)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_same_seed_same_weights_in_fresh_processes():
    first, second, other = _train(3), _train(3), _train(4)
    assert first == second
    assert first != other


def test_set_seed_seeds_every_source_and_checks_its_arguments():
    import random

    import numpy as np

    try:
        gk.set_seed(11)
        a = (random.random(), np.random.rand(), torch.rand(1).item(), gk.GRU(3, 4).weight_ih_l0.sum().item())
        gk.set_seed(11)
        b = (random.random(), np.random.rand(), torch.rand(1).item(), gk.GRU(3, 4).weight_ih_l0.sum().item())
        assert a == b
        assert torch.are_deterministic_algorithms_enabled()
        gk.set_seed(11, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    for bad in (-1, 2**32, 1.5, "7", True):
        with pytest.raises(TypeError, match="seed must be an int"):
            gk.set_seed(bad)
