"""The GPU engines (docs/gpu.md), tested where there is no GPU.

engine="triton" runs its kernels under Triton's interpreter on CPU tensors
(TRITON_INTERPRET=1, set by conftest.py when torch sees no GPU) and is compared with
the reference engine: outputs, final states and every gradient, over both conventions,
both kernel modes (one launch per step, and the persistent kernel with the time loop
inside), directions, lengths, resets, zoneout, recurrent dropout (fixed masks), layer
norm and odd sizes; minGRU's scan too. engine="cudnn" is torch's own GRU function,
whose plumbing (lengths, empty rows, stacks) is checked on the CPU, where the same
function runs torch's CPU kernels. The dispatch between engines is tested on the CPU.
Tests marked `cuda` run the same comparisons on a real GPU (benchmarks/bench_gpu.py
runs them first).
"""

import os
import types
import warnings

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import engines, reference

pytest.importorskip("triton")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and TRITON_INTERPRET is not 1", allow_module_level=True)

from grukit.gpu import cudnn, recurrence, scan  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TOL = 2e-6  # float32: the kernels and the reference round differently, by a few ulps


def _layer_case(T, B, I, H, *, reset_after=True, ln=False, lengths=False, resets=False, zoneout=False,
                h_mask=False, reverse=False, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    x = r(T, B, I).to(DEV).requires_grad_()
    h0 = r(B, H).to(DEV).requires_grad_()
    ws = [r(3 * H, I) * 0.4, r(3 * H, H) * 0.4] + ([r(3 * H) * 0.3, r(3 * H) * 0.3] if bias else [None, None])
    ws = [None if w is None else w.to(DEV).requires_grad_() for w in ws]
    gains = (torch.rand(3 * H, generator=g).add(0.5).to(DEV).requires_grad_(),
             torch.rand(3 * H, generator=g).add(0.5).to(DEV).requires_grad_()) if ln else None
    kw = {}
    if lengths:
        kw["lengths"] = torch.randint(0, T + 1, (B,), generator=g).to(DEV)
    if resets:
        kw["resets"] = (torch.rand(T, B, generator=g) < 0.3).to(DEV)
    if zoneout:
        kw["zoneout"] = torch.bernoulli(torch.full((T, B, H), 0.3), generator=g).to(DEV)
    if h_mask:
        kw["h_mask"] = (torch.bernoulli(torch.full((B, H), 0.7), generator=g) / 0.7).to(DEV)
    dy, dh = r(T, B, H).to(DEV), r(B, H).to(DEV)
    params = [x, h0] + [w for w in ws if w is not None] + (list(gains) if gains else [])
    found = []
    for fn in (reference.gru_layer, recurrence.gru_layer):
        y, h = fn(x, h0, tuple(ws), reset_after=reset_after, reverse=reverse, layer_norm=gains, **kw)
        grads = torch.autograd.grad((y * dy).sum() + (h * dh).sum(), params)
        found.append((y, h, *grads))
    return found


def _assert_close(found, tol=TOL):
    for k, (want, got) in enumerate(zip(*found, strict=True)):
        assert got.shape == want.shape and got.dtype == want.dtype, k
        err = (got - want).abs().max().item()
        assert err <= tol * max(1.0, want.abs().max().item()), f"tensor {k}: max error {err}"


OPTION_SETS = {
    "plain": {}, "lengths": {"lengths": True}, "resets": {"resets": True}, "zoneout": {"zoneout": True},
    "h_mask": {"h_mask": True}, "reverse": {"reverse": True},
    "all": {"lengths": True, "resets": True, "zoneout": True, "h_mask": True},
    "all_reverse": {"lengths": True, "zoneout": True, "h_mask": True, "reverse": True},
}
CONVENTIONS = {"reset_after": {}, "reset_before": {"reset_after": False}, "layer_norm": {"ln": True}}


@pytest.fixture(params=["step", "persistent"])
def mode(request, monkeypatch):
    monkeypatch.setattr(recurrence, "MODE", request.param)
    return request.param


@pytest.mark.parametrize("options", list(OPTION_SETS))
@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_triton_layer_equals_the_reference(mode, convention, options):
    _assert_close(_layer_case(5, 3, 4, 5, **CONVENTIONS[convention], **OPTION_SETS[options]),
                  tol=5e-6 if convention == "layer_norm" else TOL)


@pytest.mark.parametrize("T,B,I,H", [(1, 1, 3, 17), (3, 5, 1, 1), (2, 2, 2, 33), (6, 17, 3, 4)])
@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_triton_layer_odd_sizes(mode, T, B, I, H, convention):
    _assert_close(_layer_case(T, B, I, H, **CONVENTIONS[convention], lengths=B > 1), tol=5e-6)


def test_triton_layer_without_bias(mode):
    _assert_close(_layer_case(4, 2, 3, 6, bias=False))
    _assert_close(_layer_case(4, 2, 3, 6, bias=False, reset_after=False, resets=True))


def test_kernel_mode_follows_the_hidden_size(monkeypatch):
    monkeypatch.setattr(recurrence, "MODE", None)
    assert recurrence._persistent(recurrence.PERSISTENT_MAX_H, None)
    assert not recurrence._persistent(recurrence.PERSISTENT_MAX_H + 1, None)


def _pair(cls_kwargs, seed=0):
    torch.manual_seed(seed)
    a = gk.GRU(3, 5, engine="triton", device=DEV, **cls_kwargs)
    b = gk.GRU(3, 5, engine="reference", device=DEV, **cls_kwargs)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("kwargs", [
    {"num_layers": 2, "bidirectional": True},
    {"num_layers": 2, "reset_after": False, "dropout": 0.3},
    {"layer_norm": True, "zoneout": 0.2, "recurrent_dropout": 0.3},
    {"reset_after": False, "zoneout": 0.3, "recurrent_dropout": 0.2, "num_layers": 2, "bidirectional": True},
])
@pytest.mark.parametrize("training", [False, True])
def test_gru_module_on_triton_equals_the_reference(kwargs, training):
    """The whole module: stacks, directions, lengths; in training the masks are drawn in the
    same order by the shared stacking code, so the same seed gives the same masks."""
    a, b = _pair(kwargs)
    x = torch.randn(6, 3, 3, device=DEV)
    lengths = torch.tensor([6, 2, 4])
    found = []
    for m in (a, b):
        m.train(training)
        torch.manual_seed(1)
        out, h_n = m(x, lengths=lengths)
        loss = out.square().sum() + h_n.sin().sum()
        found.append((out, h_n, *torch.autograd.grad(loss, list(m.parameters()))))
    assert a.last_engine == "triton" and b.last_engine == "reference"
    _assert_close(found, tol=5e-6)


def test_gru_cell_on_triton_equals_the_reference():
    for reset_after in (True, False):
        torch.manual_seed(0)
        a = gk.GRUCell(4, 6, reset_after=reset_after, engine="triton", device=DEV)
        b = gk.GRUCell(4, 6, reset_after=reset_after, engine="reference", device=DEV)
        b.load_state_dict(a.state_dict())
        x, h = torch.randn(3, 4, device=DEV), torch.randn(3, 6, device=DEV)
        found = [(m(x, h), *torch.autograd.grad(m(x, h).sum(), list(m.parameters()))) for m in (a, b)]
        assert a.last_engine == "triton"
        _assert_close(found)


def test_triton_double_backward_equals_the_reference():
    """A gradient penalty through the Triton engine: the backward recomputes on the
    reference (as the CPU engine does), so the penalty's gradient is exact."""
    a, b = _pair({"num_layers": 2})
    x = torch.randn(4, 2, 3, device=DEV)
    found = []
    for m in (a, b):
        xi = x.clone().requires_grad_()
        out, _ = m(xi)
        (gx,) = torch.autograd.grad(out.sum(), xi, create_graph=True)
        found.append(torch.autograd.grad(gx.square().sum(), list(m.parameters())))
    _assert_close(found, tol=1e-5)


@pytest.mark.parametrize("T,B,H,C", [(7, 3, 5, None), (1, 1, 1, None), (30, 2, 70, None), (7, 3, 5, 3),
                                     (30, 2, 70, 4), (9, 1, 130, 9), (5, 2, 3, 1)])
def test_triton_mingru_scan_equals_the_reference(T, B, H, C, monkeypatch):
    """One chunk (pass 3 alone) and the chunked scan (C steps a chunk: a last chunk
    shorter, chunks of one step, channels past one block)."""
    monkeypatch.setattr(scan, "FORCE_CHUNK", C)
    g = torch.randn(T, B, 2 * H, device=DEV).requires_grad_()
    h0 = torch.rand(B, H, device=DEV).requires_grad_()
    found = []
    for fn in (reference.mingru_scan, scan.mingru_scan):
        h = fn(g, h0)
        dh = torch.ones_like(h).cumsum(0).sin()
        found.append((h, *torch.autograd.grad((h * dh).sum(), (g, h0))))
    _assert_close(found)


def test_mingru_chunks_chosen_for_the_gpu():
    """Chunks only where the channels alone leave the GPU idle, and never under MIN_CHUNK steps."""
    assert scan.chunk(4096, 32 * 256) == 4096 // 16  # 64 channel blocks: 16 chunks for 1024 programs
    assert scan.chunk(100, 32 * 256) == 34  # 3 chunks (T // MIN_CHUNK)
    assert scan.chunk(50, 32 * 256) == 50  # too short to cut
    assert scan.chunk(4096, 256 * 1024) == 4096  # 2048 blocks fill the GPU
    assert scan.chunk(5, 1) == 5


def test_mingru_module_on_triton_with_lengths():
    torch.manual_seed(0)
    a = gk.MinGRU(3, 6, num_layers=2, engine="triton").to(DEV)
    b = gk.MinGRU(3, 6, num_layers=2, engine="reference").to(DEV)
    b.load_state_dict(a.state_dict())
    x = torch.randn(9, 3, 3, device=DEV)
    lengths = torch.tensor([9, 0, 4])
    found = []
    for m in (a, b):
        out, h_n = m(x, lengths=lengths)
        found.append((out, h_n, *torch.autograd.grad(out.sum() + h_n.sum(), list(m.parameters()))))
    assert a.last_engine == "triton"
    _assert_close(found, tol=5e-6)


def test_triton_ops_trace_whole_under_compile_and_export():
    """The ops are registered with fake kernels: torch.compile(fullgraph=True) and
    torch.export take them whole, forward and backward."""
    torch._dynamo.reset()  # other tests' compilations must not count against the recompile limit
    a, b = _pair({"num_layers": 2, "layer_norm": True})
    x = torch.randn(5, 2, 3, device=DEV)
    compiled = torch.compile(a, fullgraph=True, backend="aot_eager")
    out, h_n = compiled(x)
    want, want_h = b(x)
    torch.testing.assert_close(out, want, atol=5e-6, rtol=0)
    torch.testing.assert_close(h_n, want_h, atol=5e-6, rtol=0)
    g = torch.autograd.grad(out.sum(), list(a.parameters()))
    g_ref = torch.autograd.grad(b(x)[0].sum(), list(b.parameters()))
    for u, v in zip(g, g_ref, strict=True):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)
    exported = torch.export.export(a.eval(), (x,))
    assert any("triton_layer_forward" in str(n.target) for n in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(x)[0], b.eval()(x)[0], atol=5e-6, rtol=0)


# --------------------------------------------------------------------- cuDNN's path

@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_cudnn_path_keeps_grukits_contract(num_layers, bidirectional):
    """torch's GRU function under grukit's calling contract: padded lengths (0 included),
    h_n at each row's last valid step, the whole stack in one call."""
    torch.manual_seed(0)
    gru = gk.GRU(3, 5, num_layers=num_layers, bidirectional=bidirectional, engine="reference")
    x = torch.randn(6, 4, 3)
    h0 = torch.randn(num_layers * (2 if bidirectional else 1), 4, 5)
    flat = [w for ws in gru.all_weights for w in ws]
    for lengths in (None, torch.tensor([6, 0, 3, 1])):
        got = cudnn.gru_stack(x, h0, flat, True, num_layers, bidirectional, lengths, 0.0, False)
        want = gru(x, h0, lengths=lengths)
        torch.testing.assert_close(got[0], want[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(got[1], want[1], atol=1e-6, rtol=0)


# ------------------------------------------------------------------------- dispatch

def _fake(device="cuda", dtype=torch.float32):
    return types.SimpleNamespace(device=torch.device(device), dtype=dtype, is_cuda=device == "cuda")


def test_dispatch_on_cuda_follows_the_table():
    """On CUDA: "auto" takes cuDNN where it computes the call, Triton for every other option;
    explicit engines are honoured or refused with the reason."""
    assert engines._resolve_cuda("auto", _fake(), frozenset()) == "cudnn"
    assert engines._resolve_cuda("auto", _fake(), frozenset({"dropout"})) == "cudnn"
    for option in ("reset_before", "layer_norm", "zoneout", "recurrent_dropout", "resets"):
        assert engines._resolve_cuda("auto", _fake(), frozenset({option})) == "triton"
        with pytest.raises(ValueError, match="which cudnn does not compute"):
            engines._resolve_cuda("cudnn", _fake(), frozenset({option}))
    assert engines._resolve_cuda("triton", _fake(), frozenset()) == "triton"
    assert engines._resolve_cuda("auto", _fake(dtype=torch.bfloat16), frozenset()) == "cudnn"
    # lengths: Triton masks rows in place where cuDNN needs packing; float64 has only cuDNN
    assert engines._resolve_cuda("auto", _fake(), frozenset(), lengths=True) == "triton"
    assert engines._resolve_cuda("cudnn", _fake(), frozenset(), lengths=True) == "cudnn"
    assert engines._resolve_cuda("auto", _fake(dtype=torch.float64), frozenset(), lengths=True) == "cudnn"
    with pytest.raises(ValueError, match="engine='cpu' runs on CPU tensors"):
        engines._resolve_cuda("cpu", _fake(), frozenset())


def test_dispatch_without_triton_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(engines, "_triton_checked", True)
    monkeypatch.setattr(engines, "_triton_error", "Triton is not installed (pip install 'grukit[triton]')")
    monkeypatch.setattr(engines, "_warned_kinds", set())
    with pytest.warns(RuntimeWarning, match="Triton is not installed"):
        assert engines._resolve_cuda("auto", _fake(), frozenset({"layer_norm"})) == "reference"
    assert engines._resolve_cuda("auto", _fake(), frozenset()) == "cudnn"  # cuDNN needs no Triton
    assert engines._resolve_cuda("auto", _fake(), frozenset(), lengths=True) == "cudnn"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engines._resolve_cuda("triton", _fake(), frozenset())  # warned once only


def test_gpu_engines_on_cpu_tensors_fall_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(engines, "_warned_kinds", set())
    gru = gk.GRU(3, 4, engine="cudnn")
    with pytest.warns(RuntimeWarning, match="engine='cudnn' runs on CUDA tensors"):
        gru(torch.randn(2, 1, 3))
    assert gru.last_engine in ("cpu", "reference")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    gru = gk.GRU(3, 4, engine="triton")
    with pytest.warns(RuntimeWarning, match="engine='triton' runs on CUDA tensors"):
        gru(torch.randn(2, 1, 3))
    assert gru.last_engine in ("cpu", "reference")


def test_engine_info_lists_the_gpu_engines():
    info = gk.engine_info()
    assert set(info["engines"]) >= {"reference", "cpu", "cudnn", "triton"}
    assert info["engines"]["triton"]["built"] is True
    assert info["device"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    if not torch.cuda.is_available():
        assert "none here" in info["engines"]["cudnn"]["runs"]


# ------------------------------------------------------------------ device= faces

def _model(device):
    gk.set_seed(3)
    model = gk.Sequential([gk.layers.GRU(8), gk.layers.Dense(1)], device=device)
    model.compile("adam", "mse", learning_rate=0.01)
    return model


def test_sequential_device_cpu_fits_and_predicts_numpy():
    x = np.random.default_rng(0).normal(size=(32, 6, 2)).astype("float32")
    y = x.sum((1, 2))[:, None]
    runs = []
    for _ in range(2):
        model = _model("cpu")
        hist = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        pred = model.predict(x)
        assert isinstance(pred, np.ndarray) and pred.shape == (32, 1) and model.device.type == "cpu"
        runs.append((hist.history["loss"], pred))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("bad,err", [("gpu", ValueError), ("cuda:x", ValueError), (3, TypeError)])
def test_bad_device_names_the_argument(bad, err):
    with pytest.raises(err, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        gk.Sequential([gk.layers.Dense(1)], device=bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where there is no GPU")
def test_asking_for_a_gpu_that_is_not_there_is_a_clear_error(tmp_path):
    model = _model("cuda")
    with pytest.raises(ValueError, match="device='cuda' needs a CUDA GPU"):
        model.fit(np.zeros((4, 3, 2)), np.zeros((4, 1)), epochs=1, verbose=0)
    from grukit.app import cli

    assert cli.main(["train", "--device", "cuda:1", "--epochs", "1", "--out", str(tmp_path)]) == 2


def test_load_and_architect_take_a_device(tmp_path):
    model = _model("cpu")
    model.fit(np.zeros((4, 3, 2)), np.zeros((4, 1)), epochs=1, verbose=0)
    model.save(tmp_path / "m.grukit")
    back = gk.load(tmp_path / "m.grukit", device="cpu")
    assert back.device.type == "cpu"
    np.testing.assert_array_equal(back.predict(np.ones((2, 3, 2))), model.predict(np.ones((2, 3, 2))))
    net = gk.architect.GRU(2, 3, 1, device="cpu")
    assert net.model.device.type == "cpu" and len(net.activate([0.0, 1.0])) == 1


def test_graph_replay_is_a_plain_call_on_the_cpu_and_keeps_few_graphs():
    from grukit.gpu import graphs

    graphs.clear()  # graphs other tests left (on a GPU)
    calls = []

    def fn(a, b):
        calls.append(1)
        return [a + b]

    a = torch.ones(3)
    for _ in range(3):
        assert torch.equal(graphs.replay(("k",), fn, [a, a])[0], 2 * a)
    assert len(calls) == 3 and len(graphs._cache) == 0  # nothing captured for CPU tensors
    try:
        for i in range(graphs.MAX_GRAPHS + 5):
            graphs._remember((i,), graphs._SEEN)
        assert list(graphs._cache) == [(i,) for i in range(5, graphs.MAX_GRAPHS + 5)]
    finally:
        graphs.clear()


# ------------------------------------------------------------ on a real GPU (cuda)

@pytest.mark.cuda
def test_cuda_cudnn_is_torchs_gru():
    torch.manual_seed(0)
    ours = gk.GRU(16, 32, num_layers=2, batch_first=True).cuda()
    theirs = ours.to_torch().cuda()
    x = torch.randn(4, 10, 16, device="cuda")
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], atol=0, rtol=0)
    assert ours.last_engine == "cudnn"


@pytest.mark.cuda
@pytest.mark.parametrize("H", [32, 200])  # the persistent kernel and the per-step one
def test_cuda_triton_equals_the_reference(H):
    torch.manual_seed(0)
    for kwargs in ({"layer_norm": True}, {"reset_after": False}, {"zoneout": 0.1}):
        a = gk.GRU(16, H, engine="triton", **kwargs).cuda()
        b = gk.GRU(16, H, engine="reference", **kwargs).cuda()
        b.load_state_dict(a.state_dict())
        x = torch.randn(20, 8, 16, device="cuda")
        lengths = torch.randint(1, 21, (8,))
        found = []
        for m in (a, b):  # (both in float32: torch.mm is not TF32 unless asked, and no cuDNN runs)
            torch.manual_seed(1)  # the same zoneout masks for both engines
            out = m(x, lengths=lengths)[0]
            found.append((out, *torch.autograd.grad(out.sum(), list(m.parameters()))))
        assert a.last_engine == "triton"
        _assert_close(found, tol=1e-4)


@pytest.mark.cuda
def test_cuda_bfloat16_autocast_runs_on_triton():
    torch.manual_seed(0)
    gru = gk.GRU(64, 64, layer_norm=True).cuda()
    x = torch.randn(10, 4, 64, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, h_n = gru(x)
    assert out.dtype == torch.bfloat16 and gru.last_engine == "triton"
    torch.testing.assert_close(out.float(), gru(x)[0], atol=0.05, rtol=0)


@pytest.mark.cuda
@pytest.mark.parametrize("options", [{}, {"reset_after": False, "num_layers": 2}])
def test_quantized_gru_runs_on_cuda_with_its_widened_weights(options):
    """gk.quantize(model).to("cuda"): the int8 buffers move, each call widens them, and the
    output is the CPU int8 model's, up to its activations' rounding and cuDNN's TF32."""
    torch.manual_seed(0)
    gru = gk.GRU(8, 24, **options).eval()
    q = gk.quantize(gru)
    x = torch.randn(11, 4, 8)
    lengths = torch.tensor([11, 3, 7, 1])
    with torch.no_grad():
        cpu_y, cpu_h = q(x, lengths=lengths)
        q.to("cuda")
        y, h = q(x.cuda(), lengths=lengths)
    assert q.last_engine == "triton" and y.device.type == "cuda"
    assert q.get_buffer("weight_hh_l0_int8").dtype == torch.int8
    torch.testing.assert_close(y.cpu(), cpu_y, atol=0.02, rtol=0)
    torch.testing.assert_close(h.cpu(), cpu_h, atol=0.02, rtol=0)
    with torch.no_grad():
        y2, _ = q(x.cuda())  # no lengths: cuDNN where it computes the call
    assert q.last_engine == ("cudnn" if gru.reset_after else "triton")
    torch.testing.assert_close(y2.cpu(), q.cpu()(x)[0], atol=0.02, rtol=0)


@pytest.mark.cuda
def test_cuda_fit_ends_where_the_cpu_fit_ends(tmp_path):
    x = np.random.default_rng(0).normal(size=(64, 12, 3)).astype("float32")
    y = x.mean((1, 2))[:, None]
    preds = {}
    for device in ("cpu", "cuda"):
        model = _model(device)
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
        preds[device] = model.predict(x)
        assert model.device.type == device
    np.testing.assert_allclose(preds["cuda"], preds["cpu"], atol=1e-3)
    model.save(tmp_path / "gpu.grukit")
    np.testing.assert_array_equal(gk.load(tmp_path / "gpu.grukit", device="cuda").predict(x), preds["cuda"])
    back = gk.load(tmp_path / "gpu.grukit", device="cpu")
    # torch runs cuDNN's RNN in TF32 by default (torch.backends.cudnn.allow_tf32): ~1e-4 apart
    np.testing.assert_allclose(back.predict(x), preds["cuda"], atol=1e-3)


@pytest.mark.cuda
@pytest.mark.parametrize("kwargs", [{}, {"reset_after": False, "zoneout": 0.1}])
def test_cuda_graph_replays_equal_the_launches(kwargs):
    """The per-step loops replayed as CUDA graphs give what launching them does, call
    after call (the first call launches, the second captures, later ones replay), and
    each replay reads its own inputs."""
    from grukit.gpu import graphs

    torch.manual_seed(0)
    gru = gk.GRU(16, 200, engine="triton", **kwargs).cuda()  # H > 64: the per-step loop
    xs = [torch.randn(12, 5, 16, device="cuda") for _ in range(2)]
    lengths = torch.tensor([12, 3, 7, 1, 12])

    def run(x):
        torch.manual_seed(1)
        out, h_n = gru(x, lengths=lengths)
        return (out, h_n, *torch.autograd.grad((out * out).sum() + h_n.sum(), list(gru.parameters())))

    graphs.clear()
    try:
        with_graphs = [run(x) for x in (xs[0], xs[0], xs[1], xs[0], xs[1])]
        assert len(graphs._cache) == 2 and all(isinstance(e, graphs._Graph) for e in graphs._cache.values())
        graphs.ENABLED = False
        launched = [run(x) for x in (xs[0], xs[0], xs[1], xs[0], xs[1])]
    finally:
        graphs.ENABLED = True
        graphs.clear()
    for got, want in zip(with_graphs, launched, strict=True):
        _assert_close([want, got], tol=1e-6)
