"""Comparison helpers that say which tensor differed and by how much, and a loader for the
repository's scripts (examples, benchmarks, tools) as modules."""

from __future__ import annotations

import importlib.util
import pathlib

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def script(relative: str):
    """The repository's script at ``relative`` (e.g. "benchmarks/forecast_suite.py"), loaded as a module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tolerances(dtype: torch.dtype) -> dict:
    """assert_close's float32 defaults; 1e-10 for float64 (the README's exactness promise)."""
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-10}
    return {}


def assert_all_close(actual: dict, expected: dict, **tol) -> None:
    assert actual.keys() == expected.keys(), (sorted(actual), sorted(expected))
    for name in expected:
        a, e = actual[name], expected[name]
        assert a is not None and e is not None, f"{name}: missing ({a is None}, {e is None})"
        try:
            torch.testing.assert_close(a, e, **tol)
        except AssertionError as err:
            diff = (a.double() - e.double()).abs().max().item() if a.shape == e.shape else "n/a"
            raise AssertionError(f"tensor {name!r} differs (max abs diff {diff}):\n{err}") from None


def grads(outputs, upstream, inputs: dict) -> dict:
    """d(sum(output * upstream))/d(input) for every named input."""
    names = list(inputs)
    gs = torch.autograd.grad(outputs, [inputs[n] for n in names], upstream, retain_graph=True)
    return dict(zip(names, gs, strict=True))


def seeded_outputs_and_grads(module, x, h0, seed: int, **call) -> list:
    """[output, h_n, and the gradients of x, h0 and every parameter] of one call of a
    GRU-like module, under random upstream gradients; torch's RNG is seeded first, so
    two engines draw the same dropout or zoneout masks."""
    x = x.clone().requires_grad_()
    h0 = h0.clone().requires_grad_()
    torch.manual_seed(seed)
    y, h_n = module(x, h0, **call)
    g = torch.Generator().manual_seed(seed + 1)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum() + (
        h_n * torch.randn(h_n.shape, generator=g, dtype=y.dtype)).sum()
    return [y, h_n, *torch.autograd.grad(loss, [x, h0, *module.parameters()])]
