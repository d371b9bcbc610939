"""torch.compile(fullgraph=True) and torch.export over gk.GRU and gk.MinGRU: the fused
kernels are torch.library ops with fake implementations and registered autograd, so
there is no graph break, and the compiled model computes what the eager one does."""

import pytest
import torch

import grukit as gk
from grukit import engines

needs_cpu_engine = pytest.mark.skipif(engines.compiled_cpu() is None, reason="the CPU engine is not built")
F64 = torch.float64


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles Net.forward anew: dynamo counts recompiles of one code object
    across tests, and fullgraph=True fails on its limit."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Net(torch.nn.Module):
    """What a user compiles: a model holding a GRU, with a head."""

    def __init__(self, rnn: torch.nn.Module, width: int) -> None:
        super().__init__()
        self.rnn, self.head = rnn, torch.nn.Linear(width, 1)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


def _layer_args(bias=True, ln=False, lengths=False, options=False, reset_after=True):
    T, B, I, H = 4, 3, 5, 6
    g = torch.Generator().manual_seed(0)

    def p(*shape):
        return torch.randn(*shape, dtype=F64, generator=g).requires_grad_()

    b_ih, b_hh = (p(3 * H), p(3 * H)) if bias else (None, None)
    return (p(T, B, I), p(B, H), p(3 * H, I), p(3 * H, H), b_ih, b_hh,
            torch.tensor([4, 2, 3]) if lengths else None,
            (torch.rand(T, B, generator=g) < 0.3) if options else None,
            torch.bernoulli(torch.full((T, B, H), 0.3, dtype=F64), generator=g) if options else None,
            torch.bernoulli(torch.full((B, H), 0.7, dtype=F64), generator=g) if options else None,
            p(3 * H) if ln else None, p(3 * H) if ln else None, reset_after, False, True)


@needs_cpu_engine
@pytest.mark.parametrize("kw", [{}, {"ln": True, "lengths": True},
                                {"bias": False, "options": True, "reset_after": False}])
def test_ops_pass_torch_library_opcheck(kw):
    """Schema, fake kernel, autograd registration and AOT tracing, checked by torch."""
    result = torch.library.opcheck(torch.ops.grukit.gru_layer_forward.default, _layer_args(**kw))
    assert set(result.values()) == {"SUCCESS"}, result


@needs_cpu_engine
def test_mingru_scan_passes_opcheck():
    gates = torch.randn(5, 2, 8, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=F64, requires_grad=True)
    result = torch.library.opcheck(torch.ops.grukit.mingru_scan_forward.default, (gates, h0))
    assert set(result.values()) == {"SUCCESS"}, result


def _train_outputs(model, x):
    model.zero_grad(set_to_none=True)
    out = model(x)
    out.sum().backward()
    return [out.detach()] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "make,engine,backend",
    [
        (lambda e: gk.GRU(4, 8, num_layers=2, batch_first=True, engine=e), "auto", "inductor"),
        (lambda e: gk.GRU(4, 8, batch_first=True, bidirectional=True, reset_after=False, engine=e), "auto",
         "aot_eager"),
        (lambda e: gk.GRU(4, 8, batch_first=True, layer_norm=True, engine=e), "auto", "aot_eager"),
        (lambda e: gk.GRU(4, 8, batch_first=True, engine=e), "reference", "aot_eager"),
        (lambda e: gk.MinGRU(4, 8, num_layers=2, batch_first=True, engine=e), "auto", "aot_eager"),
    ],
    ids=["gru-inductor", "bidirectional-cho", "layer-norm", "reference-engine", "mingru"],
)
def test_compile_fullgraph_trains_like_eager(make, engine, backend):
    if engine == "auto" and engines.compiled_cpu() is None:
        pytest.skip("the CPU engine is not built")
    torch.manual_seed(0)
    rnn = make(engine)
    width = 16 if getattr(rnn, "bidirectional", False) else 8
    model = Net(rnn, width)
    x = torch.randn(3, 6, 4)
    want = _train_outputs(model, x)
    compiled = torch.compile(model, fullgraph=True, backend=backend)  # a graph break would raise
    got = _train_outputs(compiled, x)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # inference takes the whole-stack op
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)


@needs_cpu_engine
@pytest.mark.parametrize("options", [{}, {"bidirectional": True, "reset_after": False, "num_layers": 2}])
def test_export_with_dynamic_batch_and_time(options):
    torch.manual_seed(1)
    rnn = gk.GRU(4, 8, batch_first=True, **options)
    model = Net(rnn, 16 if options.get("bidirectional") else 8).eval()
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time", min=2)
    program = torch.export.export(model, (torch.randn(3, 5, 4),),
                                  dynamic_shapes={"x": {0: batch, 1: time}})
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "grukit.gru_layer_forward.default" in targets  # the fused op, whole
    for B, T in ((1, 2), (7, 19)):
        x = torch.randn(B, T, 4)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-6)
