"""Second-order gradients, torch.func and batched gradients, on every engine, against torch.

The fused engine's backward is a hand-written kernel; when a graph of the backward is
built (create_graph=True) or its incoming gradients are vmap-batched, it recomputes
through the reference engine's ops (grukit.reference.through_reference), and calls
under torch.func transforms run on the reference engine (grukit.engines.transformed).
These tests hold the results against torch.nn.GRU / GRUCell themselves.
"""

import warnings

import pytest
import torch
from torch.func import functional_call, grad, jacfwd, jacrev, vjp, vmap

import grukit as gk

F64 = torch.float64
TOL = {"rtol": 1e-8, "atol": 1e-8}
ENGINES = ["cpu", "reference"]


def _pair(layers, bidirectional, engine, train=False):
    torch.manual_seed(0)
    theirs = torch.nn.GRU(3, 4, layers, bidirectional=bidirectional, dtype=F64,
                          dropout=0.0).train(train)
    return gk.GRU.from_torch(theirs, engine=engine).train(train), theirs


def _penalty_grads(module, x, h0=None):
    """WGAN-GP style: the gradients of ||d(out)/dx|| - 1)^2 w.r.t. x and every parameter."""
    out, h_n = module(x) if h0 is None else module(x, h0)
    loss = (out ** 2).sum() + (h_n * torch.linspace(-1, 1, h_n.shape[-1], dtype=F64)).sum()
    gx, = torch.autograd.grad(loss, x, create_graph=True)
    penalty = (gx.norm() - 1) ** 2
    return torch.autograd.grad(penalty, [x, *module.parameters()])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("train", [False, True])
def test_gradient_penalty_equals_torch(engine, layers, bidirectional, train):
    ours, theirs = _pair(layers, bidirectional, engine, train)
    x = torch.randn(6, 2, 3, dtype=F64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning of an unregistered derivative must not come
        got = _penalty_grads(ours, x)
    assert ours.last_engine == engine
    want = _penalty_grads(theirs, x)
    for name, a, b in zip(["x", *dict(ours.named_parameters())], got, want, strict=True):
        torch.testing.assert_close(a, b, **TOL, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("engine", ENGINES)
def test_gradient_penalty_through_the_cell_equals_torch(engine):
    torch.manual_seed(1)
    theirs = torch.nn.GRUCell(3, 4, dtype=F64)
    ours = gk.GRUCell.from_torch(theirs, engine=engine)
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)
    h = torch.randn(2, 4, dtype=F64, requires_grad=True)

    def penalty(cell):
        gx, gh = torch.autograd.grad(cell(x, h).pow(3).sum(), (x, h), create_graph=True)
        return torch.autograd.grad(gx.square().sum() + gh.sum() ** 2, [x, h, *cell.parameters()])

    for a, b in zip(penalty(ours), penalty(theirs), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert ours.last_engine == engine


def test_hessian_vector_product_equals_torch():
    ours, theirs = _pair(2, True, "cpu")
    x = torch.randn(5, 3, 3, dtype=F64)
    v = [torch.randn_like(p) for p in theirs.parameters()]

    def hvp(m):
        loss = m(x)[0].tanh().sum()
        g = torch.autograd.grad(loss, list(m.parameters()), create_graph=True)
        return torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, v, strict=True)),
                                   list(m.parameters()))

    for a, b in zip(hvp(ours), hvp(theirs), strict=True):
        torch.testing.assert_close(a, b, **TOL)


OPTIONS = {
    "plain": {},
    "reset_before": {"reset_after": False},
    "bidirectional_two_layers": {"bidirectional": True, "num_layers": 2},
    "layer_norm": {"layer_norm": True},
    "zoneout_train": {"zoneout": 0.3, "train": True},
    "zoneout_eval": {"zoneout": 0.3},
    "recurrent_dropout": {"recurrent_dropout": 0.4, "train": True},
    "lengths": {"bidirectional": True, "lengths": [4, 2]},
    "resets": {"resets": True},
    "no_bias": {"bias": False},
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_gradgradcheck_every_option(engine, option):
    opts = dict(OPTIONS[option])
    train, lengths, resets = opts.pop("train", False), opts.pop("lengths", None), opts.pop("resets", False)
    torch.manual_seed(2)
    gru = gk.GRU(2, 3, engine=engine, dtype=F64, **opts).train(train)
    with torch.no_grad():  # gains off 1 and biases off 0, so that each term shows
        for p in gru.parameters():
            p.add_(0.1 * torch.randn_like(p))
    D = 2 if gru.bidirectional else 1
    x = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(gru.num_layers * D, 2, 3, dtype=F64, requires_grad=True)
    names = [n for n, _ in gru.named_parameters()][:2]  # the first layer's weights
    extra = {}
    if lengths is not None:
        extra["lengths"] = torch.tensor(lengths)
    if resets:
        extra["resets"] = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 1]], dtype=torch.bool)

    def f(x, h0, *ps):
        torch.manual_seed(3)  # the same zoneout / recurrent-dropout masks at every call
        return functional_call(gru, dict(zip(names, ps, strict=True)), (x, h0), extra)

    ps = [dict(gru.named_parameters())[n] for n in names]
    assert torch.autograd.gradgradcheck(f, (x, h0, *ps))
    assert gru.last_engine == engine


@pytest.mark.parametrize("engine", ENGINES)
def test_cell_and_mingru_gradgradcheck(engine):
    torch.manual_seed(4)
    cell = gk.GRUCell(2, 3, engine=engine, reset_after=False, dtype=F64)
    x = torch.randn(2, 2, dtype=F64, requires_grad=True)
    h = torch.randn(2, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, h, w: functional_call(cell, {"weight_hh": w}, (x, h)),
                                        (x, h, cell.weight_hh))
    mingru = gk.MinGRU(2, 3, num_layers=2, engine=engine).double()
    xm = torch.randn(5, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, h0: mingru(x, h0, lengths=[5, 3]), (xm, h0))
    assert (cell.last_engine, mingru.last_engine) == (engine, engine)


def test_mingru_second_order_equals_its_reference():
    torch.manual_seed(5)
    fused = gk.MinGRU(3, 4, engine="cpu").double()
    ref = gk.MinGRU(3, 4, engine="reference").double()
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(70, 2, 3, dtype=F64, requires_grad=True)  # past one chunk of the reference scan
    got = _penalty_grads(fused, x)
    want = _penalty_grads(ref, x)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert fused.last_engine == "cpu"


# ------------------------------------------------------------------ torch.func and vmap

def test_func_grad_and_vjp_equal_torch():
    ours, theirs = _pair(2, True, "auto")
    x = torch.randn(5, 2, 3, dtype=F64)

    def loss(params, module):
        out, h_n = functional_call(module, params, (x,))
        return out.sin().sum() + h_n.square().sum()

    got = grad(loss)(dict(ours.named_parameters()), ours)
    assert ours.last_engine == "reference"  # what runs under a transform
    want = grad(loss)(dict(theirs.named_parameters()), theirs)
    for name in want:
        torch.testing.assert_close(got[name], want[name], **TOL)
    out_o, fn_o = vjp(lambda x: ours(x)[0], x)
    out_t, fn_t = vjp(lambda x: theirs(x)[0], x)
    torch.testing.assert_close(out_o, out_t, **TOL)
    torch.testing.assert_close(fn_o(torch.ones_like(out_o))[0], fn_t(torch.ones_like(out_t))[0], **TOL)


@pytest.mark.parametrize("jac", [jacrev, jacfwd])
def test_jacobians_equal_torch(jac):
    ours, theirs = _pair(1, False, "auto")
    x = torch.randn(4, 2, 3, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's own jvp set-up, torch 2.13
        got = jac(lambda x: ours(x)[0])(x)
        want = jac(lambda x: theirs(x)[0])(x)
    assert got.shape == (4, 2, 4, 4, 2, 3)
    torch.testing.assert_close(got, want, **TOL)


def test_vmap_over_cell_and_gru_equals_torch_and_a_loop():
    torch.manual_seed(6)
    theirs = torch.nn.GRUCell(3, 4, dtype=F64)
    ours = gk.GRUCell.from_torch(theirs)
    xs, hs = torch.randn(5, 2, 3, dtype=F64), torch.randn(5, 2, 4, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's own "no batching rule for gru_cell"
        want = vmap(theirs)(xs, hs)
    torch.testing.assert_close(vmap(ours)(xs, hs), want, **TOL)
    gru, tgru = _pair(2, True, "auto")
    seqs = torch.randn(3, 4, 2, 3, dtype=F64)  # 3 separate (T, B, I) batches
    got = vmap(lambda x: gru(x)[0])(seqs)
    loop = torch.stack([tgru(s)[0] for s in seqs])
    torch.testing.assert_close(got, loop, **TOL)


@pytest.mark.parametrize("engine", ENGINES)
def test_is_grads_batched_equals_torch(engine):
    ours, theirs = _pair(2, True, engine)
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    out_o, h_o = ours(x)
    out_t, h_t = theirs(x)
    assert ours.last_engine == engine
    g_out = torch.randn(3, *out_o.shape, dtype=F64)
    g_h = torch.randn(3, *h_o.shape, dtype=F64)
    got = torch.autograd.grad((out_o, h_o), [x, *ours.parameters()], (g_out, g_h), is_grads_batched=True)
    want = torch.autograd.grad((out_t, h_t), [x, *theirs.parameters()], (g_out, g_h), is_grads_batched=True)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_first_order_training_still_runs_the_kernel_backward(monkeypatch):
    """The recompute is only for graphs of the backward and batched gradients."""
    from grukit import reference

    called = []
    monkeypatch.setattr(reference, "through_reference",
                        lambda *a: called.append(1) or pytest.fail("recomputed a plain backward"))
    ours, _ = _pair(1, False, "cpu")
    x = torch.randn(5, 2, 3, dtype=F64, requires_grad=True)
    ours(x)[0].sum().backward()
    assert x.grad is not None and not called


# ------------------------------------------------------------------ exception classes

MISTAKES = {  # name: (module maker, call arguments); the same mistake for torch and grukit
    "features": ("gru", lambda: (torch.randn(3, 2, 6),)),
    "rank": ("gru", lambda: (torch.randn(3, 2, 4, 1),)),
    "h0_shape": ("gru", lambda: (torch.randn(3, 2, 4), torch.randn(1, 3, 5))),
    "input_dtype": ("gru", lambda: (torch.randn(3, 2, 4, dtype=F64),)),
    "h0_dtype": ("gru", lambda: (torch.randn(3, 2, 4), torch.randn(1, 2, 5, dtype=F64))),
    "int_input": ("gru", lambda: (torch.ones(3, 2, 4, dtype=torch.long),)),
    "empty_time": ("gru", lambda: (torch.randn(0, 2, 4),)),
    "cell_features": ("cell", lambda: (torch.randn(3, 6),)),
    "cell_rank": ("cell", lambda: (torch.randn(3, 6, 1),)),
    "cell_batch": ("cell", lambda: (torch.randn(3, 4), torch.randn(2, 5))),
    "cell_dtype": ("cell", lambda: (torch.randn(3, 4, dtype=F64),)),
    "cell_h_dtype": ("cell", lambda: (torch.randn(3, 4), torch.randn(3, 5, dtype=F64))),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_errors_are_caught_by_the_class_torch_raises(mistake):
    kind, args = MISTAKES[mistake]
    torch.manual_seed(0)
    theirs = torch.nn.GRU(4, 5) if kind == "gru" else torch.nn.GRUCell(4, 5)
    ours = gk.GRU(4, 5) if kind == "gru" else gk.GRUCell(4, 5)
    inputs = args()
    with pytest.raises(Exception) as torch_error:
        theirs(*inputs)
    with pytest.raises(Exception) as our_error:
        ours(*inputs)
    assert isinstance(our_error.value, type(torch_error.value)), (our_error.value, torch_error.value)
    assert isinstance(our_error.value, (ValueError, TypeError))  # grukit's own promise holds too
    assert isinstance(our_error.value, (gk.InputError, gk.InputDTypeError))
