"""gk.GRU / gk.GRUCell against torch.nn.GRU / GRUCell: outputs, states, every gradient."""

import itertools

import pytest
import torch
from _helpers import assert_all_close, grads, tolerances
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import grukit as gk

I, H, T, B = 5, 7, 6, 4
ENGINES = ["reference", "cpu"]

COMBOS = list(itertools.product([1, 3], [False, True], [False, True], [False, True],
                                ["tensor", "packed", "lengths"]))


def _pair(layers, bidirectional, batch_first, bias, dtype, engine):
    torch.manual_seed(0)
    ref = nn.GRU(I, H, layers, bias=bias, batch_first=batch_first,
                 bidirectional=bidirectional, dtype=dtype)
    ours = gk.GRU.from_torch(ref, engine=engine)
    return ref, ours


def _named_inputs(module, x, h0):
    d = {"input": x, "h0": h0}
    d.update({name: p for name, p in module.named_parameters()})
    return d


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers,bidirectional,batch_first,bias,mode", COMBOS)
def test_matches_torch_gru(layers, bidirectional, batch_first, bias, mode, dtype, engine):
    ref, ours = _pair(layers, bidirectional, batch_first, bias, dtype, engine)
    D = 2 if bidirectional else 1
    g = torch.Generator().manual_seed(1)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(shape, generator=g, dtype=dtype, requires_grad=True)
    h0 = torch.randn(layers * D, B, H, generator=g, dtype=dtype, requires_grad=True)
    lengths = torch.tensor([T, 2, 5, 1])  # unsorted, with the full length and 1

    if mode == "tensor":
        out_r, h_r = ref(x, h0)
        out_o, h_o = ours(x, h0)
    elif mode == "packed":
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        out_r, h_r = ref(packed, h0)
        out_o, h_o = ours(packed, h0)
        assert isinstance(out_o, type(out_r))
        assert torch.equal(out_o.batch_sizes, out_r.batch_sizes)
        assert torch.equal(out_o.sorted_indices, out_r.sorted_indices)
        assert torch.equal(out_o.unsorted_indices, out_r.unsorted_indices)
        out_r, out_o = out_r.data, out_o.data
    else:
        packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        out_r, h_r = ref(packed, h0)
        out_r, _ = pad_packed_sequence(out_r, batch_first=batch_first, total_length=T)
        out_o, h_o = ours(x, h0, lengths=lengths)

    tol = tolerances(dtype)
    assert_all_close({"output": out_o, "h_n": h_o}, {"output": out_r, "h_n": h_r}, **tol)
    d_out = torch.randn(out_r.shape, generator=g, dtype=dtype)
    d_h = torch.randn(h_r.shape, generator=g, dtype=dtype)
    g_r = grads((out_r, h_r), (d_out, d_h), _named_inputs(ref, x, h0))
    g_o = grads((out_o, h_o), (d_out, d_h), _named_inputs(ours, x, h0))
    assert_all_close(g_o, g_r, **tol)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_unbatched_input_matches_torch(layers, bidirectional):
    ref, ours = _pair(layers, bidirectional, False, True, torch.float64, "auto")
    D = 2 if bidirectional else 1
    x = torch.randn(T, I, dtype=torch.float64)
    h0 = torch.randn(layers * D, H, dtype=torch.float64)
    out_r, h_r = ref(x, h0)
    out_o, h_o = ours(x, h0)
    assert out_o.shape == (T, D * H) and h_o.shape == (layers * D, H)
    assert_all_close({"output": out_o, "h_n": h_o}, {"output": out_r, "h_n": h_r},
                     **tolerances(torch.float64))


def test_initialisation_and_state_dict_match_torch():
    torch.manual_seed(123)
    ref = nn.GRU(I, H, num_layers=2, bidirectional=True)
    torch.manual_seed(123)
    ours = gk.GRU(I, H, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (n_o, p_o), (n_r, p_r) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        assert n_o == n_r and p_o.shape == p_r.shape
        assert torch.equal(p_o, p_r), n_o
    fresh = gk.GRU(I, H, num_layers=2, bidirectional=True)
    fresh.load_state_dict(ref.state_dict())  # a torch state_dict loads as is
    assert torch.equal(fresh.weight_hh_l1_reverse, ref.weight_hh_l1_reverse)
    for name in ("mode", "proj_size", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                 "dropout", "bidirectional"):  # the attributes code written for torch's RNNs reads
        assert getattr(ours, name) == getattr(ref, name), name
    assert repr(ours) == repr(ref)


def test_to_torch_round_trip_is_exact():
    torch.manual_seed(3)
    ours = gk.GRU(I, H, num_layers=2, bidirectional=True, batch_first=True)
    back = ours.to_torch()
    assert isinstance(back, nn.GRU) and back.batch_first
    x = torch.randn(B, T, I)
    out_o, h_o = ours(x)
    out_r, h_r = back(x)
    assert torch.equal(gk.GRU.from_torch(back).weight_ih_l1, ours.weight_ih_l1)
    assert_all_close({"output": out_o, "h_n": h_o}, {"output": out_r, "h_n": h_r})


def test_dropout_between_layers_in_training_only():
    torch.manual_seed(0)
    ref = nn.GRU(I, H, num_layers=2, dropout=0.5)
    ours = gk.GRU.from_torch(ref)
    x = torch.randn(T, B, I)
    ours.train()
    a, _ = ours(x)
    b, _ = ours(x)
    assert not torch.allclose(a, b), "dropout in training must resample its mask"
    ours.eval()
    ref.eval()
    out_o, h_o = ours(x)
    out_r, h_r = ref(x)
    assert_all_close({"output": out_o, "h_n": h_o}, {"output": out_r, "h_n": h_r})
    with pytest.warns(UserWarning, match="dropout"):
        gk.GRU(I, H, num_layers=1, dropout=0.2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_h", [True, False])
def test_cell_matches_torch_grucell(dtype, bias, batched, with_h):
    torch.manual_seed(0)
    ref = nn.GRUCell(I, H, bias=bias, dtype=dtype)
    ours = gk.GRUCell.from_torch(ref)
    x = torch.randn((B, I) if batched else (I,), dtype=dtype, requires_grad=True)
    h = torch.randn((B, H) if batched else (H,), dtype=dtype, requires_grad=True)
    args = (x, h) if with_h else (x,)
    h_r, h_o = ref(*args), ours(*args)
    tol = tolerances(dtype)
    assert_all_close({"h": h_o}, {"h": h_r}, **tol)
    up = torch.randn_like(h_r)
    inputs = {"input": x, **({"hx": h} if with_h else {})}
    g_r = grads(h_r, up, {**inputs, **dict(ref.named_parameters())})
    g_o = grads(h_o, up, {**inputs, **dict(ours.named_parameters())})
    assert_all_close(g_o, g_r, **tol)
    assert torch.equal(ours.to_torch().weight_hh, ref.weight_hh)
    calls = []
    cell = gk.engines.cell_inference()

    def counted(*a):
        calls.append(a)
        return cell(*a)

    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:  # inference: the compiled one-step call
        mp.setattr(gk.engines, "cell_inference", lambda: counted)
        assert_all_close({"h": ours(*args)}, {"h": ref(*args)}, **tol)
    assert len(calls) == 1 and ours.last_engine == "cpu"


def test_an_empty_batch_gives_empty_outputs_as_in_torch():
    t = nn.GRU(3, 4, num_layers=2, batch_first=True)
    g = gk.GRU(3, 4, num_layers=2, batch_first=True)
    g.load_state_dict(t.state_dict())
    for args in [(torch.zeros(0, 5, 3),), (torch.zeros(0, 5, 3), torch.zeros(2, 0, 4))]:
        (out, h_n), (want, want_h) = g(*args), t(*args)
        assert out.shape == want.shape == (0, 5, 4) and h_n.shape == want_h.shape == (2, 0, 4)
    (out.sum() + h_n.sum()).backward()  # on the weights' graph, as torch's
    assert float(g.weight_hh_l1.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("how", ["prune", "weight_norm", "spectral_norm"])
def test_pruned_and_parametrized_weights_are_used_as_in_torch(how):
    """torch.nn.utils.prune and the parametrizations take a weight out of the module's
    parameters and compute it on access; the forward reads the computed weight."""
    import torch.nn.utils.parametrizations as P
    import torch.nn.utils.prune as prune

    torch.manual_seed(0)
    t = nn.GRU(3, 4, num_layers=2)
    g = gk.GRU(3, 4, num_layers=2)
    g.load_state_dict(t.state_dict())
    x = torch.randn(6, 2, 3)
    for m in (t, g):
        if how == "prune":
            prune.l1_unstructured(m, "weight_hh_l1", amount=0.5)
        elif how == "weight_norm":
            P.weight_norm(m, "weight_hh_l1")
            with torch.no_grad():
                m.parametrizations.weight_hh_l1.original0.mul_(2)  # the weight changes through it
        else:
            torch.manual_seed(1)  # spectral_norm's power iteration starts from a random vector
            nn.utils.spectral_norm(m, "weight_hh_l1")
    assert not torch.equal(g.weight_hh_l1, t.weight_hh_l0)
    out, h_n = g(x)
    want, want_h = t(x)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_n, want_h, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    want.sum().backward()
    original = "weight_hh_l1_orig" if how != "weight_norm" else "parametrizations.weight_hh_l1.original0"
    got = dict(g.named_parameters())[original].grad
    torch.testing.assert_close(got, dict(t.named_parameters())[original].grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batch_first,unbatched", [(False, False), (True, False), (True, True)])
def test_torch_jit_trace_records_torchs_gru_and_the_trace_saves(tmp_path, batch_first, unbatched):
    """torch.jit.trace (its check re-traces under no_grad) records aten::gru as for torch.nn.GRU:
    the saved trace loads and runs as torch.nn.GRU's does; other variants trace through
    grukit's ops, gradients and all."""
    torch.manual_seed(0)
    g = gk.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = torch.randn(5, 3) if unbatched else torch.randn(2, 5, 3)
    traced = torch.jit.trace(g, (x,))
    assert [n.kind() for n in traced.inlined_graph.nodes() if "gru" in n.kind()] == ["aten::gru"]
    traced.save(str(tmp_path / "gru.pt"))
    loaded = torch.jit.load(str(tmp_path / "gru.pt"))
    x2 = torch.randn(7, 3) if unbatched else torch.randn(3, 7, 3)  # other sizes than the traced ones
    for got, want in zip(loaded(x2), g(x2), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    ln = gk.GRU(3, 4, layer_norm=True)
    x3 = torch.randn(5, 2, 3)
    traced = torch.jit.trace(ln, (x3,))
    assert [n.kind() for n in traced.inlined_graph.nodes() if "gru" in n.kind()] == [
        "grukit::gru_layer_forward"]
    ln(x3)[0].sum().backward()
    want = ln.weight_hh_l0.grad.clone()
    ln.zero_grad()
    traced(x3)[0].sum().backward()  # the trace holds the same parameters
    torch.testing.assert_close(ln.weight_hh_l0.grad, want)


def test_torch_jit_trace_of_a_cell_and_of_mingru_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    for module, args, later in [
            (gk.GRUCell(3, 4), (torch.randn(2, 3), torch.randn(2, 4)),
             (torch.randn(5, 3), torch.randn(5, 4))),
            (gk.GRUCell(3, 4, reset_after=False), (torch.randn(2, 3), torch.randn(2, 4)),
             (torch.randn(5, 3), torch.randn(5, 4))),
            (gk.MinGRU(3, 4, num_layers=2), (torch.randn(6, 2, 3),), (torch.randn(9, 3, 3),))]:
        traced = torch.jit.trace(module, args)
        traced.save(str(tmp_path / "m.pt"))
        loaded = torch.jit.load(str(tmp_path / "m.pt"))
        got, want = loaded(*later), module(*later)
        for a, b in zip(*(((got,), (want,)) if torch.is_tensor(got) else (got, want)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
