"""T = 100,000 steps forward and backward on the fused engine: finite, and float32 stays
with float64 (no drift or overflow over the length)."""

import torch

import grukit as gk


def test_hundred_thousand_steps_forward_and_backward():
    T = 100_000
    torch.manual_seed(0)
    ref = gk.GRU(4, 16, dtype=torch.float64)
    x64 = torch.randn(T, 2, 4, dtype=torch.float64) * 3  # large inputs: saturated gates too
    x64[T // 2:T // 2 + 100] = 1e4  # a burst of huge values
    results = {}
    for dtype in (torch.float64, torch.float32):
        m = gk.GRU(4, 16, dtype=dtype)
        m.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
        x = x64.to(dtype).detach().clone().requires_grad_()
        y, h_n = m(x)
        (y[-1000:].sum() + h_n.sum()).backward()
        grads = [x.grad[-1000:]] + [p.grad for p in m.parameters()]
        assert m.last_engine == "cpu"
        assert all(torch.isfinite(t).all() for t in [y, h_n, *grads])
        results[dtype] = [y[-1000:], h_n, *grads]
    for a, b in zip(results[torch.float32], results[torch.float64], strict=True):
        torch.testing.assert_close(a.double(), b, rtol=1e-3, atol=1e-4)
