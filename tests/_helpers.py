"""Comparison helpers that say which tensor differed and by how much."""

from __future__ import annotations

import torch


def tolerances(dtype: torch.dtype) -> dict:
    """assert_close's float32 defaults; 1e-10 for float64 (SPEC section 6)."""
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
