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
