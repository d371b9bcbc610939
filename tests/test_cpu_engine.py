"""The fused CPU engine against the reference engine, and its safety."""

import itertools

import pytest
import torch
from _helpers import assert_all_close, grads, tolerances
from torch.nn.utils.rnn import pack_padded_sequence

import grukit as gk
from grukit import engines


def test_compiled_engine_is_built():
    """`make test` installs with the extension: a missing build must fail here, not
    pass silently on the reference engine."""
    assert engines.compiled_cpu() is not None, engines.engine_info()
    assert gk.engine_info()["auto"] == "cpu"


ops = torch.ops.grukit
F64 = torch.float64

COMBOS = list(itertools.product([1, 3], [False, True], [False, True], [False, True],
                                ["tensor", "packed", "lengths"], [True, False]))


def _pair(layers, bidirectional, batch_first, bias, reset_after, dtype=F64, I=5, H=7):
    torch.manual_seed(0)
    kw = dict(bias=bias, batch_first=batch_first, bidirectional=bidirectional,
              reset_after=reset_after, dtype=dtype)
    fused = gk.GRU(I, H, layers, engine="cpu", **kw)
    ref = gk.GRU(I, H, layers, engine="reference", **kw)
    ref.load_state_dict(fused.state_dict())
    return fused, ref


def _run(module, x, h0, mode, lengths, batch_first):
    if mode == "tensor":
        return module(x, h0)
    if mode == "lengths":
        return module(x, h0, lengths=lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, h_n = module(packed, h0)
    return out.data, h_n


@pytest.mark.parametrize("layers,bidirectional,batch_first,bias,mode,reset_after", COMBOS)
def test_fused_matches_reference_in_float64(layers, bidirectional, batch_first, bias, mode,
                                            reset_after):
    fused, ref = _pair(layers, bidirectional, batch_first, bias, reset_after)
    D, T, B = 2 if bidirectional else 1, 6, 4
    g = torch.Generator().manual_seed(1)
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5), generator=g, dtype=F64,
                    requires_grad=True)
    h0 = torch.randn(layers * D, B, 7, generator=g, dtype=F64, requires_grad=True)
    lengths = torch.tensor([T, 2, 5, 1])
    out_f, h_f = _run(fused, x, h0, mode, lengths, batch_first)
    out_r, h_r = _run(ref, x, h0, mode, lengths, batch_first)
    assert fused.last_engine == "cpu" and ref.last_engine == "reference"
    tol = tolerances(F64)
    assert_all_close({"output": out_f, "h_n": h_f}, {"output": out_r, "h_n": h_r}, **tol)
    d_out = torch.randn(out_r.shape, generator=g, dtype=F64)
    d_h = torch.randn(h_r.shape, generator=g, dtype=F64)
    g_f = grads((out_f, h_f), (d_out, d_h), {"input": x, "h0": h0, **dict(fused.named_parameters())})
    g_r = grads((out_r, h_r), (d_out, d_h), {"input": x, "h0": h0, **dict(ref.named_parameters())})
    assert_all_close(g_f, g_r, **tol)
    # the inference path (one compiled call for the whole stack) computes the same
    with torch.inference_mode():
        out_i, h_i = _run(fused, x.detach(), h0.detach(), mode, lengths, batch_first)
    assert_all_close({"output": out_i, "h_n": h_i}, {"output": out_r, "h_n": h_r}, **tol)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B,H,T,I", [(40, 33, 50, 64), (7, 72, 9, 3), (1, 130, 12, 17), (3, 740, 4, 5)])
@pytest.mark.parametrize("longest_first", [False, True])
def test_fused_matches_reference_in_float32_at_larger_sizes(reset_after, B, H, T, I, longest_first):
    """Sizes that take the packed, threaded and row-blocked matmul paths and the
    vector tails (H not a multiple of 8 or 16), and (H=740 with 3 rows) the recurrent
    weights too large to keep packed, multiplied unpacked by ATen, against the reference engine in
    float32 (test_torch_parity.py holds the fused engine to torch.nn.GRU). Lengths sorted longest
    first make each step's matmuls and gate passes take only the rows still running."""
    fused, ref = _pair(2, True, False, True, reset_after, dtype=torch.float32, I=I, H=H)
    x = torch.randn(T, B, I, requires_grad=True)
    lengths = torch.randint(1, T + 1, (B,))
    if longest_first:
        lengths = lengths.sort(descending=True).values
    out_f, h_f = fused(x, lengths=lengths)
    out_r, h_r = ref(x, lengths=lengths)
    assert_all_close({"output": out_f, "h_n": h_f}, {"output": out_r, "h_n": h_r})
    d_out = torch.randn_like(out_r)
    names = {"input": x, **dict(fused.named_parameters())}
    g_f = grads(out_f, d_out, names)
    g_r = grads(out_r, d_out, {"input": x, **dict(ref.named_parameters())})
    assert_all_close(g_f, g_r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gradcheck_through_the_fused_backward(reset_after):
    torch.manual_seed(0)
    gru = gk.GRU(3, 4, num_layers=2, bidirectional=True, reset_after=reset_after, engine="cpu",
                 dtype=F64)
    x = torch.randn(5, 3, 3, dtype=F64, requires_grad=True)
    h0 = torch.randn(4, 3, 4, dtype=F64, requires_grad=True)
    names = [n for n, _ in gru.named_parameters()]

    def f(x, h0, *ps):
        return torch.func.functional_call(gru, dict(zip(names, ps, strict=True)), (x, h0),
                                          {"lengths": torch.tensor([5, 2, 4])})

    assert torch.autograd.gradcheck(f, (x, h0, *gru.parameters()))
    assert gru.last_engine == "cpu"


def test_the_fused_kernels_ran():
    """Not a silent fallback: the profiler sees the compiled ops, forward and backward."""
    gru = gk.GRU(4, 8, num_layers=2, engine="auto")
    x = torch.randn(6, 3, 4, requires_grad=True)
    with torch.autograd.profiler.profile() as prof:
        out, h_n = gru(x)
        out.sum().backward()
        with torch.no_grad():
            gru(x)
    names = {e.name for e in prof.function_events}
    assert {"grukit::gru_layer_forward", "grukit::gru_layer_backward",
            "grukit::gru_stack_forward"} <= names, sorted(n for n in names if "grukit" in n)
    assert gru.last_engine == "cpu"


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_runs_fused_and_matches_reference(reset_after, batched):
    torch.manual_seed(0)
    fused = gk.GRUCell(5, 9, reset_after=reset_after, dtype=F64)
    ref = gk.GRUCell(5, 9, reset_after=reset_after, engine="reference", dtype=F64)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn((3, 5) if batched else (5,), dtype=F64, requires_grad=True)
    h = torch.randn((3, 9) if batched else (9,), dtype=F64, requires_grad=True)
    h_f, h_r = fused(x, h), ref(x, h)
    assert fused.last_engine == "cpu"
    assert_all_close({"h": h_f}, {"h": h_r}, **tolerances(F64))
    up = torch.randn_like(h_r)
    assert_all_close(grads(h_f, up, {"x": x, "h": h, **dict(fused.named_parameters())}),
                     grads(h_r, up, {"x": x, "h": h, **dict(ref.named_parameters())}),
                     **tolerances(F64))


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (1, 17, 9), (5, 16, 8), (7, 33, 64), (13, 50, 7),
                                   (6, 192, 64), (2000, 48, 64), (3, 700, 130), (5, 17, 9), (8, 31, 5)])
def test_step_matmul_kernels_on_odd_shapes(packed, M, N, K):
    """Every kernel of the packed matmul: one row, blocks of 6 rows and their remainders, one
    panel and (AVX-512) two panels at once, full and partial last panels."""
    A, W, b = torch.randn(M, K), torch.randn(N, K), torch.randn(N)
    expected = torch.addmm(b, A, W.t())
    torch.testing.assert_close(ops.step_matmul(A, W, b, packed), expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ops.step_matmul(A, W, None, packed), A @ W.t(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("M,N,K", [(1, 2051, 700), (2, 1501, 503), (3, 1003, 517), (4, 770, 1029),
                                   (2, 3, 1030), (4, 4097, 65), (5, 1501, 503), (7, 1003, 517),
                                   (8, 770, 1029)])
def test_few_rows_kernels_read_large_weights(M, N, K):
    """One to eight rows run in the few-rows kernels whatever the weight's size (gemm.h kFewRows: W
    read once for up to four rows, the columns shared out among the threads for a weight of 128 KB
    or more; kChunkedRows: 5-8 rows in two chunks), most shapes here above the small kernels' bound
    (M*N*K > 2^18, where ATen ran them before); remainders of the row and column blocks and of K
    included (2 x 3 x 1030: only remainders)."""
    A, W, b = torch.randn(M, K), torch.randn(N, K), torch.randn(N)
    expected = torch.addmm(b, A, W.t())
    torch.testing.assert_close(ops.step_matmul(A, W, b, False), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B,H", [(1, 600), (2, 600), (3, 420), (4, 600), (5, 600), (8, 600)])
def test_few_rows_through_a_large_weight_match_reference(B, H, reset_after):
    """A batch of 1-8 rows through a recurrent weight too large to keep packed (and, from 5 rows,
    too few steps to pack it): every step's matmul forward (W_hh h) and backward (dgh W_hh) runs
    unpacked in the few-rows kernels, 5-8 rows in two chunks."""
    torch.manual_seed(0)
    fused = gk.GRU(7, H, reset_after=reset_after)
    ref = gk.GRU(7, H, reset_after=reset_after, engine="reference")
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(3, B, 7, requires_grad=True)
    h0 = torch.randn(1, B, H, requires_grad=True)
    (y_f, h_f), (y_r, h_r) = fused(x, h0), ref(x, h0)
    assert fused.last_engine == "cpu"
    torch.testing.assert_close(y_f, y_r, rtol=1e-5, atol=1e-5)
    up = torch.randn_like(y_r)
    inputs = lambda m: [x, h0, *m.parameters()]  # noqa: E731
    for g_f, g_r in zip(torch.autograd.grad((y_f * up).sum() + h_f.sum(), inputs(fused)),
                        torch.autograd.grad((y_r * up).sum() + h_r.sum(), inputs(ref)), strict=True):
        torch.testing.assert_close(g_f, g_r, rtol=1e-4, atol=1e-4)


def test_same_result_on_one_and_two_threads():
    torch.manual_seed(0)
    gru = gk.GRU(64, 96, num_layers=2)
    x = torch.randn(20, 48, 64, requires_grad=True)
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out, _ = gru(x)
            (dx,) = torch.autograd.grad(out.sum(), [x])
            results.append((out, dx))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_nan_and_inf_propagate_without_crashing():
    gru = gk.GRU(3, 4)
    x = torch.randn(5, 2, 3)
    x[2, 0, 1] = float("nan")
    x[1, 1, 0] = float("inf")
    out, h_n = gru(x)
    assert torch.isnan(out[2:, 0]).all() and torch.isfinite(out[:2, 0]).all()
    ref = gk.GRU(3, 4, engine="reference")
    ref.load_state_dict(gru.state_dict())
    torch.testing.assert_close(out, ref(x)[0], equal_nan=True)


def _args(T=4, B=2, I=3, H=5, dtype=torch.float32):
    return [torch.randn(T, B, I, dtype=dtype), torch.randn(B, H, dtype=dtype),
            torch.randn(3 * H, I, dtype=dtype), torch.randn(3 * H, H, dtype=dtype),
            torch.randn(3 * H, dtype=dtype), torch.randn(3 * H, dtype=dtype)]


@pytest.mark.parametrize(
    "change,exc",
    [
        (lambda a: a.__setitem__(0, torch.randn(4, 2)), ValueError),             # x not 3-D
        (lambda a: a.__setitem__(1, torch.randn(3, 5)), ValueError),             # h0 rows != B
        (lambda a: a.__setitem__(2, torch.randn(15, 4)), ValueError),            # w_ih columns != I
        (lambda a: a.__setitem__(3, torch.randn(14, 5)), ValueError),            # w_hh not (3H, H)
        (lambda a: a.__setitem__(4, torch.randn(14)), ValueError),               # bias size
        (lambda a: a.__setitem__(3, torch.randn(15, 5, dtype=F64)), TypeError),  # dtype mix
        (lambda a: a.__setitem__(0, torch.ones(4, 2, 3, dtype=torch.int32)), TypeError),
        (lambda a: a.__setitem__(5, None), ValueError),                          # one bias only
        (lambda a: a.append(torch.tensor([9, 1])), ValueError),                  # length > T
        (lambda a: a.append(torch.tensor([1, -1])), ValueError),                 # negative length
        (lambda a: a.append(torch.tensor([1.0, 2.0])), TypeError),               # float lengths
        (lambda a: a.append(torch.tensor([1, 2, 3])), ValueError),               # one per row
    ],
)
def test_raw_ops_reject_bad_inputs_before_touching_memory(change, exc):
    args = _args()
    change(args)
    if len(args) == 6:
        args.append(None)
    with pytest.raises(exc):
        ops.gru_layer_forward(*args, None, None, None, None, None, True, False, False)


def test_raw_ops_accept_strided_inputs_and_refuse_other_devices():
    x, h0, w_ih, w_hh, b_ih, b_hh = _args()
    strided = torch.randn(2, 4, 6)[:, :, ::2].transpose(0, 1)  # (4, 2, 3), not contiguous
    opts = (None, None, None, None, None, None, True, False, False)
    a = ops.gru_layer_forward(strided, h0, w_ih, w_hh, b_ih, b_hh, *opts)
    b = ops.gru_layer_forward(strided.contiguous(), h0, w_ih, w_hh, b_ih, b_hh, *opts)
    assert torch.equal(a[0], b[0])
    # meta tensors get the fake kernel (shapes only, for torch.compile); other devices no kernel
    meta = ops.gru_layer_forward(x.to("meta"), h0.to("meta"), w_ih.to("meta"), w_hh.to("meta"),
                                 None, None, None, None, None, None, None, None, True, False, True)
    assert [tuple(t.shape) for t in meta[:4]] == [(4, 2, 5), (2, 5), (4, 2, 20), (4, 2, 5)]
    assert all(t.device.type == "meta" for t in meta)
    with pytest.raises(ValueError, match="saved tensors"):
        ops.gru_layer_backward(torch.zeros(4, 2, 5), torch.zeros(2, 5), x, w_ih, w_hh,
                               torch.zeros(1), torch.zeros(1), None, None, None, None, [], True, True, False)


def test_raw_backward_refuses_mismatched_shapes():
    x, h0, w_ih, w_hh, b_ih, b_hh = _args()
    y, h_n, g, hp = ops.gru_layer_forward(x, h0, w_ih, w_hh, b_ih, b_hh, None, None, None, None, None, None,
                                          True, False, True)[:4]
    ok = (torch.ones_like(y), torch.ones_like(h_n), x, w_ih, w_hh, g, hp, None, None, None, None, [], True,
          True, False)
    ops.gru_layer_backward(*ok)
    bad_cases = [
        (2, torch.randn(4, 2, 4)),          # x with other I than w_ih
        (4, torch.randn(15, 4)),            # w_hh not (3H, H)
        (0, torch.ones(4, 2, 6)),           # dy not (T, B, H)
        (5, g[:, :, :-1]),                  # gates cut short
        (7, torch.tensor([9, 9])),          # lengths past T
        (0, torch.ones(4, 2, 5, dtype=F64)),
        (8, torch.ones(4, 2)),              # resets not bool
        (8, torch.ones(3, 2, dtype=torch.bool)),  # resets not (T, B)
        (9, torch.ones(4, 2, 4)),           # zoneout not (T, B, H)
        (9, torch.ones(4, 2, 5, dtype=F64)),  # zoneout dtype
        (10, torch.ones(4, 5)),             # rec_mask not (B, H)
    ]
    for index, value in bad_cases:
        args = list(ok)
        args[index] = value
        with pytest.raises((ValueError, TypeError)):
            ops.gru_layer_backward(*args)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B", [1, 32])
def test_cached_weight_packs_see_in_place_changes(reset_after, B):
    """Packed weights are cached between calls; a write through .data (which bumps
    no version counter) must still be seen."""
    torch.manual_seed(0)
    gru = gk.GRU(8, 64, reset_after=reset_after)
    ref = gk.GRU(8, 64, reset_after=reset_after, engine="reference")
    x = torch.randn(20, B, 8)
    with torch.no_grad():
        before = gru(x)[0]
        assert torch.equal(gru(x)[0], before)  # the cached pack gives the same result
        gru.weight_hh_l0.data.mul_(0.5)
        gru.bias_hh_l0.data.add_(0.1)
        gru.weight_ih_l0.data.mul_(-1)
        after = gru(x)[0]
        ref.load_state_dict(gru.state_dict())
        expected = ref(x)[0]
    assert not torch.allclose(before, after)
    assert_all_close({"output": after}, {"output": expected})


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("B", [1, 3, 6])
@pytest.mark.parametrize("H", [48, 128])
@pytest.mark.parametrize("lengths", [[9, 4, 1, 7, 9, 2], [9, 9, 7, 4, 2, 1]])
def test_split_time_loop_matches_reference(reset_after, B, H, lengths):
    """Small float32 steps (64K to 1M multiply-adds: H=128 at B=3 and 6) run the time loop on
    all threads, each owning a share of the hidden units (two variants for reset_after=False:
    B <= 4 and above); smaller ones (H=48, and H=128 at B=1) run the plain loop on the calling
    thread, as does reset_after=False below H=128. Lengths longest first: each step takes only
    the rows still running."""
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, reset_after=reset_after)
    fused, ref = gk.GRU(5, H, **kw), gk.GRU(5, H, engine="reference", **kw)
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(9, B, 5, requires_grad=True)
    lengths = torch.tensor(lengths[:B])
    out_f, h_f = fused(x, lengths=lengths)
    out_r, h_r = ref(x, lengths=lengths)
    assert_all_close({"output": out_f, "h_n": h_f}, {"output": out_r, "h_n": h_r})
    d_out = torch.randn_like(out_r)
    assert_all_close(grads(out_f, d_out, {"input": x, **dict(fused.named_parameters())}),
                     grads(out_r, d_out, {"input": x, **dict(ref.named_parameters())}),
                     rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        out_i, h_i = fused(x, lengths=lengths)
    assert_all_close({"output": out_i, "h_n": h_i}, {"output": out_r, "h_n": h_r})


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("H", [16, 96])  # float32: the plain loop (under 64K multiply-adds a step), the split
def test_packed_stack_call_matches_the_padded_one(dtype, reset_after, H):
    """The stack call on a PackedSequence's data as it is (batch_sizes): the output is packed alike
    and equals the padded call's (with the same lengths) packed; h_n likewise."""
    torch.manual_seed(0)
    gru = gk.GRU(6, H, 2, bidirectional=True, reset_after=reset_after, dtype=dtype)
    T, B = 7, 5
    x = torch.randn(T, B, 6, dtype=dtype)
    lengths = torch.tensor([7, 7, 4, 2, 1])
    h0 = torch.randn(4, B, H, dtype=dtype)
    packed = pack_padded_sequence(x, lengths)
    flat = [w for ws in gru.all_weights for w in ws]
    out, h_n = ops.gru_stack_forward(packed.data, h0, flat, True, 2, True, None, reset_after,
                                     packed.batch_sizes)
    out_p, h_p = ops.gru_stack_forward(x, h0, flat, True, 2, True, lengths, reset_after)
    assert out.shape == (int(lengths.sum()), 2 * H)
    assert_all_close({"output": out, "h_n": h_n},
                     {"output": pack_padded_sequence(out_p, lengths).data, "h_n": h_p}, **tolerances(dtype))
    fake = ops.gru_stack_forward(packed.data.to("meta"), h0.to("meta"), [w.to("meta") for w in flat], True, 2,
                                 True, None, reset_after, packed.batch_sizes)
    assert tuple(fake[0].shape) == tuple(out.shape) and tuple(fake[1].shape) == tuple(h_n.shape)


@pytest.mark.parametrize("batch_sizes,rows,match", [
    ([3, 4, 1], 8, "non-increasing"),        # grows
    ([3, 2, 0], 5, "non-increasing"),        # an empty step
    ([3, 2, 1], 7, "sum"),                   # not x's rows
    ([2, 2, 1], 5, "batch_sizes"),           # h0 has 3 rows
])
def test_packed_stack_call_refuses_bad_batch_sizes(batch_sizes, rows, match):
    gru = gk.GRU(4, 5)
    flat = [w.detach() for ws in gru.all_weights for w in ws]
    with pytest.raises(ValueError, match=match):
        ops.gru_stack_forward(torch.randn(rows, 4), torch.zeros(1, 3, 5), flat, True, 1, False, None, True,
                              torch.tensor(batch_sizes))
    with pytest.raises(ValueError, match="not both"):
        ops.gru_stack_forward(torch.randn(6, 4), torch.zeros(1, 3, 5), flat, True, 1, False,
                              torch.tensor([3, 2, 1]), True, torch.tensor([3, 2, 1]))


def test_packed_inference_runs_on_the_packed_data(monkeypatch):
    """gk.GRU on a PackedSequence in inference pads nothing (torch.nn.GRU's packed work): it equals
    torch.nn.GRU, in the input's batch order, with and without h0."""
    import grukit.modules as modules

    def refuse(*a, **k):
        raise AssertionError("inference on a PackedSequence padded it")

    torch.manual_seed(0)
    theirs = torch.nn.GRU(3, 16, 2, bidirectional=True, batch_first=True)
    ours = gk.GRU.from_torch(theirs)
    x = torch.randn(5, 6, 3)
    packed = pack_padded_sequence(x, torch.tensor([2, 6, 1, 6, 4]), batch_first=True, enforce_sorted=False)
    h0 = torch.randn(4, 5, 16)
    monkeypatch.setattr(modules, "pad_packed_sequence", refuse)
    for h in (h0, None):
        with torch.inference_mode():
            out, h_n = ours(packed, h)
            want, h_want = theirs(packed, h)
        assert ours.last_engine == "cpu"
        assert torch.equal(out.batch_sizes, want.batch_sizes) and torch.equal(out.unsorted_indices,
                                                                              want.unsorted_indices)
        assert_all_close({"output": out.data, "h_n": h_n}, {"output": want.data, "h_n": h_want})


def test_inference_with_unsorted_lengths_sorts_when_it_pays(monkeypatch):
    """With 96 hidden units or more and a quarter of the padded steps unused, inference runs the
    rows longest first (then puts them back): the same result as the reference engine."""
    seen = []
    stack = engines.stack_inference()

    def spy(x, h0, weights, has_bias, layers, bi, lengths, *rest):
        seen.append(None if lengths is None else lengths.tolist())
        return stack(x, h0, weights, has_bias, layers, bi, lengths, *rest)

    monkeypatch.setattr(engines, "stack_inference", lambda: spy)
    torch.manual_seed(0)
    fused = gk.GRU(4, 96, 2, bidirectional=True)
    ref = gk.GRU(4, 96, 2, bidirectional=True, engine="reference")
    ref.load_state_dict(fused.state_dict())
    x, h0 = torch.randn(40, 16, 4), torch.randn(4, 16, 96)
    lengths = torch.tensor([3, 40, 17, 1, 25, 8, 40, 12, 5, 33, 2, 19, 7, 28, 11, 6])
    with torch.no_grad():
        out, h_n = fused(x, h0, lengths=lengths)
        want, h_want = ref(x, h0, lengths=lengths)
        fused(x, h0, lengths=torch.full((16,), 40))  # nothing to skip: left in order
    assert seen == [sorted(lengths.tolist(), reverse=True), [40] * 16]
    assert_all_close({"output": out, "h_n": h_n}, {"output": want, "h_n": h_want})


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_eager_calls_call_the_extension_directly_with_the_ops_numbers(monkeypatch, dtype, reset_after, bias):
    """An eager call goes to the extension's pybind11 functions (no torch.ops dispatch); they
    compute exactly what the torch.ops ops do: inference of the cell, a stack, lengths, packed
    data; a training step's forward and backward."""
    from grukit import function

    direct = []
    for name in ("_direct_stack", "_direct_cell", "_direct_layer", "_direct_layer_backward"):
        real = getattr(function, name)
        monkeypatch.setattr(function, name,
                            lambda *a, _real=real, _name=name: direct.append(_name) or _real(*a))
    torch.manual_seed(0)
    cell = gk.GRUCell(5, 7, bias=bias, reset_after=reset_after, dtype=dtype)
    gru = gk.GRU(5, 7, 2, bias=bias, bidirectional=True, reset_after=reset_after, dtype=dtype)
    x, h = torch.randn(3, 5, dtype=dtype), torch.randn(3, 7, dtype=dtype)
    xs, h0 = torch.randn(6, 3, 5, dtype=dtype), torch.randn(4, 3, 7, dtype=dtype)
    lengths = torch.tensor([6, 2, 4])
    packed = pack_padded_sequence(xs, lengths, enforce_sorted=False)

    def run():
        with torch.no_grad():
            found = (cell(x, h), *gru(xs, h0), *gru(xs, h0, lengths=lengths), gru(packed)[0].data)
        inputs = [xs.requires_grad_(), h0.requires_grad_()]
        out, h_n = gru(xs, h0, lengths=lengths)
        trained = torch.autograd.grad((out * out).sum() + h_n.sum(), [*inputs, *gru.parameters()])
        xs.requires_grad_(False), h0.requires_grad_(False)
        return (*found, out, h_n, *trained)

    got = run()
    layers = ["_direct_layer"] * 4 + ["_direct_layer_backward"] * 4  # 2 layers x 2 directions
    assert direct == ["_direct_cell"] + ["_direct_stack"] * 3 + layers
    monkeypatch.setattr(function, "_direct", lambda x: False)  # as a traced or compiled call: torch.ops
    direct.clear()
    want = run()
    assert direct == []
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def test_profiled_and_dispatch_mode_calls_see_the_ops_whole():
    """A profile names the compiled ops, and a Python dispatch mode (FakeTensorMode, FlopCounterMode,
    a user's) receives them whole: those calls keep torch.ops' dispatch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    cell, gru = gk.GRUCell(3, 4), gk.GRU(3, 4)
    x = torch.randn(2, 3)
    with torch.no_grad():
        with Seen():
            cell(x)
            gru(x.unsqueeze(0))
        with torch.autograd.profiler.profile() as prof:
            cell(x)
    assert seen.count("grukit.gru_stack_forward.default") == 2, seen
    assert "grukit::gru_stack_forward" in {e.name for e in prof.function_events}
