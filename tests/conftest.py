import os
import sys

import pytest
import torch

# Keras 3 must run on the torch backend; the choice is read once, at import.
os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, os.path.dirname(__file__))
# Without a GPU the Triton engine's kernels run under Triton's interpreter, on CPU tensors
# (read when the kernels are defined, so before grukit.gpu.kernels is imported).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` need a real GPU: skipped, with the reason, where torch sees none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False here); "
                                   "benchmarks/bench_gpu.py runs these on one")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """How many fuzz examples ran (tests/test_fuzz.py), good and bad inputs together."""
    fuzz = sys.modules.get("test_fuzz")
    ran = getattr(fuzz, "RAN", None)
    if ran:
        terminalreporter.write_line(f"fuzz: {sum(ran.values())} examples over {len(ran)} properties "
                                    f"({', '.join(f'{k} {v}' for k, v in ran.items())})")
