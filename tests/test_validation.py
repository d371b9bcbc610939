"""Every bad input gets a ValueError/TypeError that names the argument."""

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import grukit as gk

GRU_ARGS = dict(input_size=3, hidden_size=4)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"input_size": 0}, ValueError, r"input_size must be a positive int, got 0"),
        ({"input_size": 2.5}, TypeError, r"input_size must be an int, got 2.5"),
        ({"hidden_size": -1}, ValueError, r"hidden_size must be a positive int, got -1"),
        ({"hidden_size": True}, TypeError, r"hidden_size must be an int, got True"),
        ({"num_layers": 0}, ValueError, r"num_layers must be a positive int"),
        ({"dropout": 1.5}, ValueError, r"dropout must be in \[0, 1\], got 1.5"),
        ({"dropout": "x"}, TypeError, r"dropout must be a float"),
        ({"bidirectional": "yes"}, TypeError, r"bidirectional must be a bool, got 'yes'"),
        ({"batch_first": 2}, TypeError, r"batch_first must be a bool, got 2"),
        ({"reset_after": None}, TypeError, r"reset_after must be a bool, got None"),
        ({"engine": "gpu"}, ValueError, r"engine must be one of .*got 'gpu'"),
        ({"engine": 1}, TypeError, r"engine must be one of"),
    ],
)
def test_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gk.GRU(**{**GRU_ARGS, **kwargs})


def test_cell_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        gk.GRUCell(3, 0)
    with pytest.raises(ValueError, match="engine must be one of"):
        gk.GRUCell(3, 4, engine="fast")


@pytest.fixture
def gru():
    return gk.GRU(3, 4, num_layers=2)


@pytest.mark.parametrize(
    "x,exc,match",
    [
        (np.zeros((5, 2, 3), np.float32), TypeError, r"input must be a torch.Tensor, got a ndarray"),
        ([[0.0] * 3] * 5, TypeError, r"input must be a torch.Tensor, got a list"),
        (torch.zeros(5, 2, 3, 1), ValueError, r"input must be 3-D.*got shape \(5, 2, 3, 1\)"),
        (torch.zeros(3), ValueError, r"input must be 3-D.*got shape \(3,\)"),
        (torch.zeros(5, 2, 4), ValueError, r"input must have input_size=3 features.*got 4"),
        (torch.zeros(5, 2, 3, dtype=torch.int64), TypeError,
         r"input must be a floating-point tensor of dtype torch.float32, got torch.int64"),
        (torch.zeros(5, 2, 3, dtype=torch.float64), TypeError,
         r"input must have dtype torch.float32 \(the module's parameters\), got torch.float64"),
        (torch.zeros(0, 2, 3), ValueError, r"input must have at least one time step"),
    ],
)
def test_bad_input(gru, x, exc, match):
    with pytest.raises(exc, match=match):
        gru(x)


@pytest.mark.parametrize(
    "h0,exc,match",
    [
        (torch.zeros(1, 2, 4), ValueError, r"h0 must have shape \(2, 2, 4\).*got \(1, 2, 4\)"),
        (torch.zeros(2, 3, 4), ValueError, r"h0 must have shape \(2, 2, 4\).*got \(2, 3, 4\)"),
        (torch.zeros(2, 4), ValueError, r"h0 must have shape \(2, 2, 4\).*got \(2, 4\)"),
        (torch.zeros(2, 2, 4, dtype=torch.float64), TypeError, r"h0 must have dtype torch.float32"),
        (np.zeros((2, 2, 4)), TypeError, r"h0 must be a torch.Tensor, got a ndarray"),
    ],
)
def test_bad_h0(gru, h0, exc, match):
    with pytest.raises(exc, match=match):
        gru(torch.zeros(5, 2, 3), h0)


def test_bad_h0_for_unbatched_input(gru):
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\).*unbatched.*got \(2, 1, 4\)"):
        gru(torch.zeros(5, 3), torch.zeros(2, 1, 4))


def test_bad_h0_for_packed_input(gru):
    packed = pack_padded_sequence(torch.zeros(5, 2, 3), [5, 3])
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2, 4\)"):
        gru(packed, torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="lengths must be None when input is a PackedSequence"):
        gru(packed, lengths=[5, 3])
    bad = pack_padded_sequence(torch.zeros(5, 2, 3, dtype=torch.float64), [5, 3])
    with pytest.raises(TypeError, match="input must have dtype torch.float32"):
        gru(bad)


@pytest.mark.parametrize(
    "lengths,exc,match",
    [
        ([5, 6], ValueError, r"lengths must lie in \[0, 5\].*max 6"),
        ([5, -1], ValueError, r"lengths must lie in \[0, 5\].*min -1"),
        ([5], ValueError, r"lengths must have shape \(2,\).*got \(1,\)"),
        (torch.tensor([[5, 3]]), ValueError, r"lengths must have shape \(2,\)"),
        ([5.0, 3.0], TypeError, r"lengths must be a list of ints"),
        (torch.tensor([5.0, 3.0]), TypeError, r"lengths must hold integers, got dtype torch.float32"),
        ("53", TypeError, r"lengths must be a 1-D int tensor, array or list, got '53'"),
    ],
)
def test_bad_lengths(gru, lengths, exc, match):
    with pytest.raises(exc, match=match):
        gru(torch.zeros(5, 2, 3), lengths=lengths)


def test_lengths_accepts_numpy_and_tensors(gru):
    x = torch.randn(5, 2, 3)
    a = gru(x, lengths=np.array([5, 3]))[0]
    b = gru(x, lengths=torch.tensor([5, 3], dtype=torch.int32))[0]
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "args,exc,match",
    [
        ((torch.zeros(2, 4),), ValueError, r"input must have input_size=3 features.*got 4"),
        ((torch.zeros(2, 3, 1),), ValueError, r"input must be 2-D \(B, I\) or 1-D"),
        ((np.zeros((2, 3)),), TypeError, r"input must be a torch.Tensor"),
        ((torch.zeros(2, 3), torch.zeros(3, 4)), ValueError, r"hx must have shape \(2, 4\)"),
        ((torch.zeros(3), torch.zeros(1, 4)), ValueError, r"hx must have shape \(4,\)"),
        ((torch.zeros(2, 3, dtype=torch.int32),), TypeError, r"input must be a floating-point"),
        ((torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.float64)), TypeError,
         r"hx must have dtype torch.float32"),
    ],
)
def test_bad_cell_input(args, exc, match):
    with pytest.raises(exc, match=match):
        gk.GRUCell(3, 4)(*args)


def test_conversions_refuse_wrong_types():
    with pytest.raises(TypeError, match="module must be a torch.nn.GRU, got a LSTM"):
        gk.GRU.from_torch(torch.nn.LSTM(2, 3))
    with pytest.raises(TypeError, match="module must be a torch.nn.GRUCell"):
        gk.GRUCell.from_torch(torch.nn.GRU(2, 3))
    with pytest.raises(ValueError, match="to_torch needs reset_after=True"):
        gk.GRU(2, 3, reset_after=False).to_torch()
    with pytest.raises(ValueError, match="to_torch needs reset_after=True"):
        gk.GRUCell(2, 3, reset_after=False).to_torch()


def test_missing_compiled_engine_falls_back_with_one_warning(monkeypatch):
    from grukit import engines

    monkeypatch.setattr(engines, "_compiled", None)
    monkeypatch.setattr(engines, "_warned_kinds", set())
    gru = gk.GRU(3, 4, engine="auto")
    with pytest.warns(RuntimeWarning, match="compiled CPU engine is not built"):
        gru(torch.randn(2, 1, 3))
    assert gru.last_engine == "reference"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once
        gru(torch.randn(2, 1, 3))
