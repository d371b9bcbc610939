"""Fuzzing the public API with Hypothesis.

Every property draws inputs, good and bad, and knows which they are: a good input must
give a result with the promised shape (and the same numbers on every engine), a bad one
a ValueError or TypeError. Any other exception, a wrong answer or a crash of the process
fails the suite. The draws are derandomised, so CI sees the same ~2,400 examples on every
run; ``GRUKIT_FUZZ=explore`` draws fresh ones, ten times as many. tools/sanitize.py runs
the kernel properties under AddressSanitizer (docs/fuzzing.md).
"""

from __future__ import annotations

import atexit
import io
import math
import os
import shutil
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import grukit as gk
from grukit import layers as L
from grukit.app.job import JobConfig, from_dict, parse_config

EXPLORE = os.environ.get("GRUKIT_FUZZ") == "explore"
BAD = (ValueError, TypeError)
RAN: dict[str, int] = {}  # examples run per property (printed at the end: tests/conftest.py)


def fuzz(n: int):
    """Hypothesis settings for a property of n examples (10n when exploring)."""
    return settings(max_examples=n * (10 if EXPLORE else 1), derandomize=not EXPLORE, deadline=None,
                    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _count(name: str, good: bool = True) -> None:
    RAN[name] = RAN.get(name, 0) + 1
    event("good input" if good else "bad input")  # shown by pytest --hypothesis-show-statistics


# ---------------------------------------------------------------- tensors of every kind

DTYPES = [torch.float32] * 8 + [torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool]
VALUES = ["normal"] * 6 + ["zero", "huge", "nan", "inf"]
LAYOUTS = ["contiguous", "contiguous", "transposed", "strided", "expanded"]


def _fill(shape: tuple, values: str, gen: torch.Generator) -> torch.Tensor:
    t = torch.randn(shape, generator=gen, dtype=torch.float64)
    if values == "zero":
        t.zero_()
    elif values == "huge":
        t *= 1e30
    elif values in ("nan", "inf") and t.numel():
        flat = t.view(-1)
        bad = math.nan if values == "nan" else math.inf
        flat[torch.randint(flat.numel(), (1 + flat.numel() // 4,), generator=gen)] = bad
        flat[0] = bad  # the first element is in every layout _tensor makes of this one
    return t


def _tensor(shape: tuple, dtype: torch.dtype, values: str, layout: str, gen: torch.Generator) -> torch.Tensor:
    """A tensor of this logical shape, laid out contiguously or not (transposed, every
    other element, or stride 0 along the first dimension)."""
    if layout == "transposed" and len(shape) >= 2:
        t = _fill(shape[::-1], values, gen).permute(*reversed(range(len(shape))))
    elif layout == "strided" and len(shape) >= 1:
        t = _fill((*shape[:-1], 2 * shape[-1]), values, gen)[..., ::2]
    elif layout == "expanded" and len(shape) >= 1:
        t = _fill((1, *shape[1:]), values, gen).expand(shape)
    else:
        t = _fill(shape, values, gen)
    if dtype == torch.bool:
        return t > 0
    if not dtype.is_floating_point:
        return t.clamp(-5, 5).nan_to_num(0).to(dtype)
    return t.to(dtype)


MUTATIONS = ["T=0", "B=0", "rank 1", "rank 4", "features", "float64", "float16", "bfloat16", "int64", "bool",
             "not a tensor", "h0 shape", "h0 dtype", "h0 list", "lengths long", "lengths short",
             "lengths high", "lengths negative", "lengths float", "lengths bool", "lengths string"]


@st.composite
def gru_cases(draw):
    """(module kwargs, input, h0, lengths, good, finite, mutation): half the cases are good inputs
    (any values, layouts, h0 and lengths types), half carry one mutation that makes them bad."""
    cfg = dict(input_size=draw(st.integers(1, 5)), hidden_size=draw(st.integers(1, 6)),
               num_layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
               reset_after=draw(st.booleans()), batch_first=draw(st.booleans()), bias=draw(st.booleans()))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    bad = draw(st.sampled_from([None] * len(MUTATIONS) + MUTATIONS))
    event(f"mutation: {bad}")
    T = 0 if bad == "T=0" else draw(st.sampled_from([1, 1, 2, 3, 5, 9, 17]))
    B = 0 if bad == "B=0" else draw(st.sampled_from([1, 1, 2, 3, 4, 7]))
    rank = {"rank 1": 1, "rank 4": 4}.get(bad, draw(st.sampled_from([3, 3, 3, 2])))
    if bad == "B=0":
        rank = 3
    I = cfg["input_size"] + (draw(st.sampled_from([-1, 1, 2])) if bad == "features" else 0)
    dtype = {"float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
             "int64": torch.int64, "bool": torch.bool}.get(bad, torch.float32)
    values, layout = draw(st.sampled_from(VALUES)), draw(st.sampled_from(LAYOUTS))
    if rank == 3:
        shape = (B, T, I) if cfg["batch_first"] else (T, B, I)
    else:
        shape = {2: (T, I), 1: (I,), 4: (T, B, 1, I)}[rank]
    x = _tensor(shape, dtype, values, layout, gen)
    if bad == "not a tensor":
        x = draw(st.sampled_from([x.tolist(), "x", None, 3.0, x.numpy()]))

    rows = B if rank == 3 else 1
    LD, H = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1), cfg["hidden_size"]
    h_shape = (LD, rows, H) if rank == 3 else (LD, H)
    h_kind = draw(st.sampled_from(["none", "none", "good", "nan"]))
    h0 = None
    if h_kind != "none":
        h0 = _tensor(h_shape, torch.float32, "normal" if h_kind == "good" else "nan",
                     draw(st.sampled_from(LAYOUTS)), gen).clamp(-2, 2)
    if bad == "h0 shape":
        wrong = list(h_shape)
        wrong[draw(st.integers(0, len(wrong) - 1))] += draw(st.sampled_from([-1, 1, 2]))
        h0 = torch.zeros(wrong)
    elif bad == "h0 dtype":
        h0 = torch.zeros(h_shape, dtype=torch.float64)
    elif bad == "h0 list":
        h0 = torch.zeros(h_shape).tolist()

    lens = [draw(st.integers(0, T)) for _ in range(rows)]
    l_kind = draw(st.sampled_from(["none", "none", "tensor", "list", "numpy"]))
    lengths = {"none": None, "list": lens,
               "tensor": torch.tensor(lens, dtype=draw(st.sampled_from([torch.int64, torch.int32,
                                                                          torch.uint8]))),
               "numpy": np.array(lens, dtype=draw(st.sampled_from(["int64", "int32", "uint16"])))}[l_kind]
    if bad is not None and bad.startswith("lengths"):
        lengths = {"lengths long": torch.tensor(lens + [1]), "lengths short": torch.tensor(lens[:-1]),
                   "lengths high": torch.tensor([T + 1] * rows),
                   "lengths negative": torch.tensor([-1] + lens[1:]),
                   "lengths float": torch.tensor(lens, dtype=torch.float32), "lengths bool": [True] * rows,
                   "lengths string": "3"}[bad]
    finite = values in ("normal", "zero", "huge") and h_kind != "nan"
    return cfg, x, h0, lengths, bad is None, finite, bad


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, equal_nan=True)


@fuzz(700)
@given(gru_cases(), st.booleans())
def test_gru_forward_and_backward(case, with_grad):
    """gk.GRU on good and bad inputs; good ones agree across the compiled and reference
    engines, forward and backward (compiled inference, compiled training, reference)."""
    cfg, x, h0, lengths, ok, finite, bad = case
    _count("gk.GRU", ok)
    torch.manual_seed(0)
    gru = gk.GRU(**cfg)
    if bad == "B=0":  # not bad for gk.GRU: an empty batch gives empty outputs, as in torch.nn.GRU
        out, h_n = gru(x, h0, lengths)
        D = 2 if cfg["bidirectional"] else 1
        assert out.shape == (*x.shape[:-1], D * cfg["hidden_size"])
        assert h_n.shape == (gru.num_layers * D, 0, cfg["hidden_size"])
        return
    if not ok:
        with pytest.raises(BAD):
            gru(x, h0, lengths)
        return
    if with_grad:
        x = x.detach().requires_grad_()
    out, h_n = gru(x, h0, lengths)
    D, H = 2 if cfg["bidirectional"] else 1, cfg["hidden_size"]
    LD = gru.num_layers * D
    assert out.shape == (*x.shape[:-1], D * H)
    assert h_n.shape == ((LD, H) if x.dim() == 2 else (LD, x.shape[0 if cfg["batch_first"] else 1], H))
    if finite:  # a GRU's state is a convex mix of its last state and a tanh: bounded, never NaN
        bound = 1.0 if h0 is None else max(1.0, float(h0.abs().max()))
        assert torch.isfinite(out).all() and float(out.detach().abs().max()) <= bound + 1e-5
    gru.engine = "reference"
    ref_out, ref_h = gru(x, h0, lengths)
    _close(out, ref_out, 1e-5)
    _close(h_n, ref_h, 1e-5)
    if with_grad and finite:
        grads = torch.autograd.grad((out.sum(), h_n.sum()), [x, *gru.parameters()], allow_unused=True)
        gru.engine = "cpu"
        out2, h2 = gru(x, h0, lengths)
        fused = torch.autograd.grad((out2.sum(), h2.sum()), [x, *gru.parameters()], allow_unused=True)
        for g_ref, g_cpu in zip(grads, fused, strict=True):
            if g_ref is None or g_cpu is None:
                assert g_ref is None or not g_ref.any()
                continue
            scale = max(1.0, float(g_ref.abs().max()))
            _close(g_cpu / scale, g_ref / scale, 1e-4)


@fuzz(100)
@given(st.data())
def test_gru_wider_layers(data):
    """Sizes that take the kernels' other paths: hidden units split over threads with a
    barrier per step (H >= 16, small B), threaded gate passes, packed GEMM panels with
    ragged edges; inference and training against the reference engine."""
    _count("gk.GRU wide")
    cfg = dict(input_size=data.draw(st.sampled_from([1, 5, 17, 40])),
               hidden_size=data.draw(st.sampled_from([16, 23, 40, 64, 130])),
               num_layers=data.draw(st.integers(1, 2)), bidirectional=data.draw(st.booleans()),
               reset_after=data.draw(st.booleans()), bias=data.draw(st.booleans()))
    T, B = data.draw(st.sampled_from([2, 3, 7, 12])), data.draw(st.sampled_from([1, 1, 2, 3, 5, 33, 70]))
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31)))
    x = _tensor((T, B, cfg["input_size"]), torch.float32, "normal", data.draw(st.sampled_from(LAYOUTS)), gen)
    lengths = torch.randint(0, T + 1, (B,), generator=gen) if data.draw(st.booleans()) else None
    h0 = torch.randn(cfg["num_layers"] * (2 if cfg["bidirectional"] else 1), B, cfg["hidden_size"],
                     generator=gen) * 0.5 if data.draw(st.booleans()) else None
    torch.manual_seed(0)
    gru = gk.GRU(**cfg, engine="cpu")
    with torch.no_grad():
        out, h_n = gru(x, h0, lengths)
    ref = gk.GRU(**cfg, engine="reference")
    ref.load_state_dict(gru.state_dict())
    ref_out, ref_h = ref(x, h0, lengths)
    _close(out, ref_out.detach(), 2e-5)
    _close(h_n, ref_h.detach(), 2e-5)
    xg = x.detach().requires_grad_()
    out, h_n = gru(xg, h0, lengths)
    fused = torch.autograd.grad((out.square().sum(), h_n.sum()), [xg, *gru.parameters()])
    out, h_n = ref(xg, h0, lengths)
    grads = torch.autograd.grad((out.square().sum(), h_n.sum()), [xg, *ref.parameters()])
    for g_cpu, g_ref in zip(fused, grads, strict=True):
        scale = max(1.0, float(g_ref.abs().max()))
        _close(g_cpu / scale, g_ref / scale, 1e-4)


@fuzz(200)
@given(gru_cases())
def test_gru_cell_steps(case):
    """gk.GRUCell on one step of the same cases: good input (B, I) (B may be 0, as in torch)
    or (I,), else a clear error."""
    cfg, x, h0, _, ok, finite, _ = case
    cell = gk.GRUCell(cfg["input_size"], cfg["hidden_size"], bias=cfg["bias"], reset_after=cfg["reset_after"])
    if isinstance(x, torch.Tensor) and x.dim() == 3:
        x = x[0] if x.shape[0] else x.flatten(0, 1)  # (B, I) or (T, I): a cell input all the same
    hx = h0[0] if isinstance(h0, torch.Tensor) and h0.dim() >= 2 and h0.shape[0] > 0 else None
    good = isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.dim() in (1, 2) and \
        x.shape[-1] == cfg["input_size"] and \
        (hx is None or (hx.shape == (*x.shape[:-1], cfg["hidden_size"]) and hx.dtype == torch.float32))
    _count("gk.GRUCell", good)
    if not good:
        with pytest.raises(BAD):
            cell(x, hx)
        return
    h = cell(x, hx)
    assert h.shape == (*x.shape[:-1], cfg["hidden_size"])
    if finite and torch.isfinite(x).all():
        assert torch.isfinite(h).all()


@fuzz(200)
@given(gru_cases(), st.sampled_from(["auto", "sequential", "parallel"]))
def test_mingru(case, mode):
    """gk.MinGRU on the same cases (lengths need a batch; the compiled scan == the sequential one)."""
    cfg, x, h0, lengths, ok, finite, mutation = case
    L_, H = cfg["num_layers"], cfg["hidden_size"]
    m = gk.MinGRU(cfg["input_size"], H, num_layers=L_, bias=cfg["bias"], batch_first=cfg["batch_first"])
    unbatched = isinstance(x, torch.Tensor) and x.dim() == 2
    if ok and h0 is not None:
        h0 = h0[:L_]  # a GRU's h0 of L layers x directions; MinGRU has one direction
    elif mutation == "h0 shape":  # wrong for the GRU; right for MinGRU only by chance
        rows = x.shape[0 if cfg["batch_first"] else 1] if not unbatched else None
        ok = tuple(h0.shape) == ((L_, H) if unbatched else (L_, rows, H))
    if ok and unbatched and lengths is not None:
        ok = False
    _count("gk.MinGRU", ok)
    if not ok:
        with pytest.raises(BAD):
            m(x, h0, lengths, mode=mode)
        return
    out, h_n = m(x, h0, lengths, mode=mode)
    assert out.shape == (*x.shape[:-1], H) and h_n.shape[0] == L_
    seq_out, seq_h = m(x, h0, lengths, mode="sequential")
    if finite and cfg["input_size"] and x.abs().max() < 1e6:
        _close(out, seq_out, 1e-4)
        _close(h_n, seq_h, 1e-4)


@fuzz(150)
@given(gru_cases())
def test_quantized_gru(case):
    """gk.quantize(gk.GRU): the int8 kernels on good inputs (near the float GRU), errors on bad."""
    cfg, x, h0, lengths, ok, finite, bad = case
    torch.manual_seed(0)
    gru = gk.GRU(**cfg).eval()
    q = gk.quantize(gru)
    _count("gk.quantize", ok)
    if bad == "B=0":  # not bad: an empty batch gives empty outputs, as gk.GRU's do
        out, h_n = q(x, h0, lengths)
        D = 2 if cfg["bidirectional"] else 1
        assert out.shape == (*x.shape[:-1], D * cfg["hidden_size"])
        assert h_n.shape == (gru.num_layers * D, 0, cfg["hidden_size"])
        return
    if not ok:
        with pytest.raises(BAD):
            q(x, h0, lengths)
        return
    out, h_n = q(x, h0, lengths)
    ref_out, ref_h = gru(x, h0, lengths)
    assert out.shape == ref_out.shape and h_n.shape == ref_h.shape
    if finite and float(x.abs().max()) < 100:
        torch.testing.assert_close(out, ref_out, rtol=0, atol=0.05)


# ------------------------------------------------------------------ Keras-style models

FIT_MUTATIONS = ["n=0", "T=0", "features", "NaN in x", "Inf in x", "x a string", "y missing", "y rows",
                 "NaN in y", "y shape"]


@st.composite
def fit_cases(draw):
    """(x, y, good) for a model Input((None, 2)) -> GRU(3) -> Dense(1) compiled with mse:
    half good (tensors, arrays, lists, float64 or integer features), half with one mutation."""
    bad = draw(st.sampled_from([None] * len(FIT_MUTATIONS) + FIT_MUTATIONS))
    n = 0 if bad == "n=0" else draw(st.sampled_from([1, 2, 5, 8]))
    t = 0 if bad == "T=0" else draw(st.sampled_from([1, 3, 6]))
    f = draw(st.sampled_from([1, 3])) if bad == "features" else 2
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    values = {"NaN in x": "nan", "Inf in x": "inf"}.get(bad) or draw(st.sampled_from(["normal", "zero",
                                                                                      "huge"]))
    x: object = _tensor((n, t, f), torch.float32, values, draw(st.sampled_from(LAYOUTS)), gen)
    y: object = torch.randn(n, 1, generator=gen)
    form = draw(st.sampled_from(["tensor", "numpy", "list", "float64", "int"]))
    if form == "numpy":
        x, y = x.numpy(), y.numpy()
    elif form == "list":
        x, y = x.tolist(), y.tolist()
    elif form == "float64":
        x = x.double().numpy()
    elif form == "int" and bad not in ("NaN in x", "Inf in x"):
        x = x.clamp(-3, 3).long().numpy()  # integer features: numbers to a GRU
    if bad == "x a string":
        x = "data.csv"
    elif bad == "y missing":
        y = None
    elif bad == "y rows":
        y = torch.randn(n + 1, 1)
    elif bad == "NaN in y":
        y = torch.full((n, 1), math.nan)
    elif bad == "y shape":
        y = torch.randn(n, 3)
    return x, y, bad is None


@fuzz(200)
@given(fit_cases(), st.sampled_from([1, 3, 32]))
def test_sequential_fit_predict(case, batch_size):
    """fit/evaluate/predict of a Sequential model: NaN or Inf in the training data, empty
    data, mismatched rows, wrong feature counts and types are clear errors."""
    x, y, ok = case
    torch.manual_seed(0)
    model = gk.Sequential([L.Input((None, 2)), L.GRU(3), L.Dense(1)])
    model.compile("adam", "mse")
    _count("Sequential.fit", ok)
    if not ok:
        with pytest.raises(BAD):
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        return
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])
    pred = model.predict(x, batch_size=batch_size)
    assert pred.shape == (len(x), 1) and np.isfinite(pred).all()
    assert math.isfinite(model.evaluate(x, y, batch_size=batch_size))


@fuzz(120)
@given(st.one_of(st.lists(st.integers(0, 9), min_size=1, max_size=8),
                 st.lists(st.integers(-3, 12), max_size=8)),
       st.sampled_from([0, 1, 2, 4]),
       st.sampled_from(["int64", "int32", "float32", "uint8", "bool"]))
def test_embedding_ids(ids, rows, dtype):
    """Token ids: ids in [0, input_dim) of any integer dtype (or bool, or whole-number floats)
    work; ids out of range and empty input are clear errors."""
    model = gk.Sequential([L.Input((None,), dtype="int64"), L.Embedding(10, 3, mask_zero=True), L.GRU(2)])
    if dtype == "uint8":
        ids = [i % 256 for i in ids]
    x = np.array([ids] * rows, dtype=dtype).reshape(rows, len(ids))
    # any integer (or bool, or whole-number float, as Keras casts them) ids in [0, 10) are good
    ok = rows > 0 and len(ids) > 0 and all(0 <= int(i) < 10 for i in x.ravel())
    _count("Embedding ids", ok)
    if not ok:
        with pytest.raises(BAD):
            model.predict(x)
        return
    out = model.predict(x)
    assert out.shape == (rows, 2) and np.isfinite(out).all()


# ------------------------------------------------------------------------ files

def _model_bytes() -> bytes:
    torch.manual_seed(0)
    model = gk.Sequential([L.Input((None, 2)), L.GRU(3), L.Dense(1)])
    model.compile("adam", "mse")
    path = os.path.join(_TMP, "model.grukit")
    model.save(path)
    with open(path, "rb") as f:
        return f.read()


_TMP = tempfile.mkdtemp(prefix="grukit-fuzz-")  # removed when the test run ends
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
GOOD = _model_bytes()


@st.composite
def corrupt_files(draw):
    data = bytearray(GOOD)
    kind = draw(st.sampled_from(["truncate", "flip", "flip_header", "header_len", "random", "empty", "json"]))
    header = 8 + int.from_bytes(GOOD[:8], "little")
    if kind == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif kind == "flip_header":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(8, header - 1))] = draw(st.integers(0, 255))
    elif kind == "header_len":
        data[:8] = draw(st.sampled_from([0, 1, header, 2**40, 2**64 - 1, len(data)])).to_bytes(8, "little")
    elif kind == "random":
        data = bytearray(draw(st.binary(min_size=0, max_size=300)))
    elif kind == "empty":
        data = bytearray()
    else:  # a well-formed safetensors header with odd JSON inside
        text = draw(st.sampled_from(['{}', '[]', '{"__metadata__": {"grukit": "{}"}}', '{"a": 1}',
                                     '{"__metadata__": {"grukit": "[1, 2]"}}',
                                     '{"__metadata__": {"grukit": "{\\"layers\\": 3}"}}',
                                     '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 999]}}',
                                     '{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}']))
        raw = text.encode()
        data = bytearray(len(raw).to_bytes(8, "little") + raw + b"\0" * draw(st.integers(0, 16)))
    return bytes(data)


@fuzz(400)
@given(corrupt_files())
def test_load_and_resume_corrupt_files(data):
    """gk.load and fit(resume=) on truncated, bit-flipped, foreign or empty files: a model
    (when a flip only changed a weight) or a ValueError, never another exception."""
    path = os.path.join(_TMP, "corrupt.grukit")
    with open(path, "wb") as f:
        f.write(data)
    try:
        model = gk.load(path)
    except ValueError:
        _count("gk.load corrupt", False)
    else:
        _count("gk.load corrupt", True)  # only a flip inside the weights' bytes leaves a loadable model
        assert isinstance(model, gk.Sequential) and len(data) == len(GOOD)
    model = gk.Sequential([L.Input((None, 2)), L.GRU(3), L.Dense(1)])
    model.compile("adam", "mse")
    with pytest.raises(ValueError):  # no file here holds a training state
        model.fit(np.zeros((2, 3, 2), "float32"), np.zeros((2, 1), "float32"), verbose=0, resume=path)


FIELD_VALUES = st.one_of(st.integers(-3, 100), st.floats(allow_nan=True), st.booleans(), st.text(max_size=8),
                         st.sampled_from(["forecast", "classify", "text", "anomaly", "co2"]),
                         st.lists(st.text(max_size=4), max_size=3), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=3), st.integers()))


@fuzz(250)
@given(st.data())
def test_train_configs(data):
    """`grukit train` configs: the default job's tables with up to three fields changed to
    anything (or TOML text of any kind): a JobConfig that passes its checks, or a clear error."""
    import dataclasses

    if data.draw(st.integers(0, 9)) == 0:
        raw = data.draw(st.text(max_size=200))
    else:
        raw = dataclasses.asdict(JobConfig())
        for _ in range(data.draw(st.sampled_from([0, 1, 1, 2, 3]))):
            section = data.draw(st.sampled_from([*raw, "extra"]))
            table = raw.setdefault(section, {})
            if not isinstance(table, dict):
                continue
            key = data.draw(st.sampled_from([*table, "bogus"] if table else ["bogus"]))
            kind = type(table.get(key))
            same_type = {bool: st.booleans(), int: st.integers(-3, 200), float: st.floats(-0.5, 1.5),
                         str: st.text(max_size=8), list: st.lists(st.text(max_size=4), max_size=3)}.get(kind)
            table[key] = data.draw(same_type if same_type is not None and data.draw(st.booleans())
                                   else FIELD_VALUES)
    try:
        job = parse_config(raw) if isinstance(raw, str) else from_dict(raw)
    except BAD:
        _count("train config", False)
        return
    _count("train config", True)
    assert job.train.epochs > 0 and job.model.units > 0
    assert job.data.task in ("forecast", "classify", "text", "anomaly")
    assert 0 < job.split.val_fraction < 1 and 0 < job.split.test_fraction < 1
    assert all(isinstance(c, str) for c in job.data.target_columns)


@fuzz(200)
@given(st.lists(st.lists(st.one_of(st.floats(-1e3, 1e3).map(str), st.integers(-9, 9).map(str),
                                   st.sampled_from(["", "1", "2.5", "-3e2", "nan", "inf", "x", "1,2", '"',
                                                    "\n", "2020-01-01"]),
                                   st.text(max_size=4)), min_size=3, max_size=3), max_size=8),
       st.sampled_from([None, "t"]), st.sampled_from([["v"], ["v", "w"], ["missing"], []]))
def test_read_series_csv(rows, time_column, targets):
    """datasets.read_series on odd CSVs: (times, finite values) or a clear error."""
    from grukit import datasets

    path = os.path.join(_TMP, "series.csv")
    buf = io.StringIO()
    buf.write("t,v,w\n")
    for row in rows:
        buf.write(",".join(row) + "\n")
    with open(path, "w") as f:
        f.write(buf.getvalue())
    try:
        times, values = datasets.read_series(path, time_column, targets)
    except BAD:
        _count("read_series csv", False)
        return
    _count("read_series csv", True)
    assert values.shape == (len(times), len(targets)) and np.isfinite(values).all()


@fuzz(150)
@given(st.data())
def test_architect(data):
    """Neataptic-style architect.GRU(*sizes) and activate(inputs): a network and outputs of
    its output size, or a clear error."""
    sizes = data.draw(st.one_of(
        st.lists(st.integers(1, 4), min_size=3, max_size=5),
        st.lists(st.one_of(st.integers(-2, 5), st.floats(allow_nan=True), st.text(max_size=2)), max_size=5)))
    try:
        net = gk.architect.GRU(*sizes)
    except BAD:
        _count("architect", False)
        return
    assert len(sizes) >= 3 and all(isinstance(s, int) and s > 0 for s in sizes)
    inputs = data.draw(st.one_of(
        st.lists(st.floats(-3, 3), min_size=sizes[0], max_size=sizes[0]),
        st.lists(st.one_of(st.floats(allow_nan=True), st.integers(-2, 2), st.text(max_size=1), st.none()),
                 max_size=5)))
    good = len(inputs) == sizes[0] and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           for v in inputs)
    _count("architect", good)
    if not good:
        with pytest.raises(BAD):
            net.activate(inputs)
        return
    out = net.activate(inputs)
    assert len(out) == sizes[-1]
    if all(math.isfinite(v) for v in inputs):
        assert all(math.isfinite(v) for v in out)
