"""Properties of the GRU function that hold for both reset conventions."""

import pytest
import torch
from _helpers import assert_all_close, tolerances

import grukit as gk
from grukit import reference

F64 = torch.float64
TOL = tolerances(F64)


def _gru(reset_after, layers=1, bidirectional=False, I=3, H=4, bias=True, batch_first=False):
    torch.manual_seed(0)
    return gk.GRU(I, H, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional,
                  reset_after=reset_after, engine="reference", dtype=F64)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(reset_after, bias):
    gru = _gru(reset_after, layers=2, bidirectional=True, I=2, H=3, bias=bias)
    x = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(4, 2, 3, dtype=F64, requires_grad=True)
    params = list(gru.parameters())

    def f(x, h0, *ps):
        names = [n for n, _ in gru.named_parameters()][: len(ps)]  # the rest stay fixed
        out, h_n = torch.func.functional_call(
            gru, dict(zip(names, ps, strict=True)), (x, h0),
            {"lengths": torch.tensor([4, 2])})
        return out, h_n

    assert torch.autograd.gradcheck(f, (x, h0, *params))
    assert torch.autograd.gradgradcheck(f, (x, h0, *params[:2]))


@pytest.mark.parametrize("reset_after", [True, False])
def test_cell_gradcheck(reset_after):
    torch.manual_seed(0)
    cell = gk.GRUCell(3, 4, reset_after=reset_after, dtype=F64)
    x = torch.randn(2, 3, dtype=F64, requires_grad=True)
    h = torch.randn(2, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(cell, (x, h))


def test_reset_after_false_formula():
    """reset_after=False applies r to h before the recurrent matmul (Cho et al.)."""
    torch.manual_seed(1)
    x, h = torch.randn(2, 3, dtype=F64), torch.randn(2, 4, dtype=F64)
    w_ih, w_hh = torch.randn(12, 3, dtype=F64), torch.randn(12, 4, dtype=F64)
    b_ih, b_hh = torch.randn(12, dtype=F64), torch.randn(12, dtype=F64)
    W = lambda w, k: w[4 * k : 4 * k + 4]  # noqa: E731  gate block k of r, z, n
    r = torch.sigmoid(x @ W(w_ih, 0).T + W(b_ih, 0) + h @ W(w_hh, 0).T + W(b_hh, 0))
    z = torch.sigmoid(x @ W(w_ih, 1).T + W(b_ih, 1) + h @ W(w_hh, 1).T + W(b_hh, 1))
    n_after = torch.tanh(x @ W(w_ih, 2).T + W(b_ih, 2) + r * (h @ W(w_hh, 2).T + W(b_hh, 2)))
    n_before = torch.tanh(x @ W(w_ih, 2).T + W(b_ih, 2) + (r * h) @ W(w_hh, 2).T + W(b_hh, 2))
    for reset_after, n in ((True, n_after), (False, n_before)):
        got = reference.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh, reset_after=reset_after)
        assert_all_close({"h": got}, {"h": (1 - z) * n + z * h}, **TOL)
    # the two conventions are genuinely different functions
    assert not torch.allclose(n_after, n_before)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_step_by_step_equals_whole_sequence(reset_after, bias):
    gru = _gru(reset_after, bias=bias)
    cell = gk.GRUCell(3, 4, bias=bias, reset_after=reset_after, dtype=F64)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in gru.state_dict().items()})
    x = torch.randn(7, 2, 3, dtype=F64)
    out, h_n = gru(x)
    h, h_gru = torch.zeros(2, 4, dtype=F64), None
    steps_cell, steps_gru = [], []
    for t in range(7):
        h = cell(x[t], h)
        steps_cell.append(h)
        o, h_gru = gru(x[t : t + 1], h_gru)  # T=1 calls, state carried
        steps_gru.append(o[0])
    expected = {"output": out, "h_n": h_n[0]}
    assert_all_close({"output": torch.stack(steps_cell), "h_n": h}, expected, **TOL)
    assert_all_close({"output": torch.stack(steps_gru), "h_n": h_gru[0]}, expected, **TOL)


@pytest.mark.parametrize("reset_after", [True, False])
def test_chunks_with_carried_state_equal_one_call(reset_after):
    gru = _gru(reset_after, layers=3, batch_first=True)
    x = torch.randn(2, 10, 3, dtype=F64)
    out, h_n = gru(x)
    h, parts = None, []
    for chunk in x.split([3, 1, 6], dim=1):
        o, h = gru(chunk, h)
        parts.append(o)
    assert_all_close({"output": torch.cat(parts, 1), "h_n": h}, {"output": out, "h_n": h_n},
                     **TOL)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_lengths_equal_each_row_run_alone(reset_after, batch_first):
    gru = _gru(reset_after, layers=2, bidirectional=True, batch_first=batch_first)
    T, lengths = 6, [6, 3, 1, 0, 4]
    x = torch.randn(len(lengths), T, 3, dtype=F64)
    h0 = torch.randn(4, len(lengths), 4, dtype=F64)
    xin = x if batch_first else x.transpose(0, 1)
    out, h_n = gru(xin, h0, lengths=lengths)
    out = out if batch_first else out.transpose(0, 1)  # (B, T, 2H)
    for b, n in enumerate(lengths):
        if n == 0:  # an empty row keeps its initial state and outputs zeros
            assert torch.equal(out[b], torch.zeros_like(out[b]))
            assert torch.equal(h_n[:, b], h0[:, b])
            continue
        xb = x[b : b + 1, :n] if batch_first else x[b : b + 1, :n].transpose(0, 1)
        o, h = gru(xb, h0[:, b : b + 1].contiguous())
        o = o if batch_first else o.transpose(0, 1)
        assert_all_close({f"output[{b}]": out[b, :n], f"h_n[{b}]": h_n[:, b]},
                         {f"output[{b}]": o[0], f"h_n[{b}]": h[:, 0]}, **TOL)
        assert torch.equal(out[b, n:], torch.zeros_like(out[b, n:]))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("I,H,T,B", [(1, 1, 1, 1), (3, 5, 1, 2), (7, 13, 3, 11), (2, 1, 9, 3)])
def test_odd_sizes_and_single_step(reset_after, I, H, T, B):
    gru = _gru(reset_after, layers=2, bidirectional=True, I=I, H=H)
    out, h_n = gru(torch.randn(T, B, I, dtype=F64))
    assert out.shape == (T, B, 2 * H) and h_n.shape == (4, B, H)
    # the last layer's forward state is the last output, its reverse state the first
    assert torch.equal(out[-1, :, :H], h_n[2]) and torch.equal(out[0, :, H:], h_n[3])


@pytest.mark.parametrize("reset_after", [True, False])
def test_non_contiguous_input_gives_the_same_result(reset_after):
    gru = _gru(reset_after, layers=2, bidirectional=True)
    base = torch.randn(3, 8, 6, dtype=F64)
    x = base[:, ::2, ::2].transpose(0, 1)  # (4, 3, 3), strided
    h0 = torch.randn(3, 4, 4, dtype=F64).transpose(0, 1)  # (4, 3, 4), strided
    assert not x.is_contiguous() and not h0.is_contiguous()
    out, h_n = gru(x, h0)
    out_c, h_c = gru(x.contiguous(), h0.contiguous())
    assert torch.equal(out, out_c) and torch.equal(h_n, h_c)


def test_unbatched_equals_batch_of_one():
    gru = _gru(False, layers=2, bidirectional=True)
    x, h0 = torch.randn(5, 3, dtype=F64), torch.randn(4, 4, dtype=F64)
    out, h_n = gru(x, h0)
    out_b, h_b = gru(x[:, None], h0[:, None])
    assert torch.equal(out, out_b[:, 0]) and torch.equal(h_n, h_b[:, 0])


def test_hx_keyword_alias_for_torch_code():
    gru = _gru(True)
    x, h0 = torch.randn(5, 2, 3, dtype=F64), torch.randn(1, 2, 4, dtype=F64)
    assert torch.equal(gru(x, hx=h0)[0], gru(x, h0)[0])
    with pytest.raises(TypeError, match="h0 or hx"):
        gru(x, h0, hx=h0)


def test_engine_info_reports_reference():
    info = gk.engine_info()
    assert info["engines"]["reference"]["built"] is True
    assert info["auto"] in ("reference", "cpu")
    assert info["threads"] == torch.get_num_threads()
    gru = _gru(True)
    gru(torch.randn(2, 1, 3, dtype=F64))
    assert gru.last_engine == "reference"
