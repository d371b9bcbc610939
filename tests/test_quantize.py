"""gk.quantize: int8 weights per output row on the fused CPU engine, and bfloat16.

The int8 engine must compute the GRU whose weights are the dequantised int8 ones
(scale * q), up to its 16-bit activations: that is checked tightly, while the
distance to the float model (the rounding of the weights) is only bounded."""

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import engines
from grukit import layers as L
from grukit.serving.quantize import QuantizedGRU, quantize_rows

pytestmark = pytest.mark.skipif(engines.compiled_cpu() is None, reason="the CPU engine is not built")


def test_rows_quantise_to_int8_with_one_scale_each():
    w = torch.randn(12, 7) * torch.arange(1, 13)[:, None]
    q, scale = quantize_rows(w)
    assert q.dtype == torch.int8 and scale.shape == (12,)
    assert int(q.abs().max(dim=1).values.min()) == 127  # every row uses the full range
    assert torch.all((q.float() * scale[:, None] - w).abs() <= scale[:, None] / 2 + 1e-6)
    zero_q, zero_s = quantize_rows(torch.zeros(2, 3))
    assert torch.equal(zero_q, torch.zeros(2, 3, dtype=torch.int8)) and torch.equal(zero_s, torch.zeros(2))


def _dequantised(q: QuantizedGRU, like: gk.GRU) -> gk.GRU:
    out = gk.GRU(like.input_size, like.hidden_size, like.num_layers, like.bias, like.batch_first,
                 bidirectional=like.bidirectional, reset_after=like.reset_after)
    state = {}
    for name in like.state_dict():
        if name.startswith("weight"):
            state[name] = q.get_buffer(name + "_int8").float() * q.get_buffer(name + "_scale")[:, None]
        else:
            state[name] = q.get_buffer(name)
    out.load_state_dict(state)
    return out.eval()


@pytest.mark.parametrize(
    "I,H,options,T,B",
    [
        (16, 32, {}, 20, 3),                                       # int8 projection, 16-bit activations
        (16, 32, {}, 3, 2),                                        # int8 projection (few rows)
        (5, 13, {"reset_after": False}, 9, 3),                     # odd sizes: every tail path
        (600, 24, {"num_layers": 2, "bidirectional": True}, 4, 3),  # K > 512: block sums
        (8, 64, {"reset_after": False, "bias": False, "bidirectional": True}, 30, 1),
        (70, 57, {}, 6, 2),  # 32-column chunks (even/odd), a 16-column one and a scalar tail
    ],
)
def test_int8_engine_computes_the_dequantised_gru(I, H, options, T, B):
    torch.manual_seed(0)
    gru = gk.GRU(I, H, **options).eval()
    q = gk.quantize(gru)
    x = torch.randn(T, B, I)
    D = 2 if gru.bidirectional else 1
    h0 = torch.randn(gru.num_layers * D, B, H) * 0.5
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    with torch.no_grad():
        got, got_h = q(x, h0, lengths)
        want, want_h = _dequantised(q, gru)(x, h0, lengths)
        float_y, _ = gru(x, h0, lengths)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-4)
    torch.testing.assert_close(got_h, want_h, rtol=0, atol=2e-4)
    assert (got - float_y).abs().max() < 0.05  # the weights' rounding
    assert q.last_engine == "cpu-int8"


@pytest.mark.parametrize("options", [{}, {"reset_after": False, "num_layers": 2, "bidirectional": True}])
def test_off_the_cpu_the_int8_weights_are_widened_for_each_call(options):
    """What a QuantizedGRU runs on a GPU: its int8 weights widened to float32, on the engine
    a float GRU takes there. The same path on CPU tensors equals the dequantised float GRU
    (on a real GPU: tests/test_gpu_engines.py)."""
    torch.manual_seed(0)
    gru = gk.GRU(6, 10, **options).eval()
    q = gk.quantize(gru)
    D = 2 if gru.bidirectional else 1
    x, h0 = torch.randn(7, 3, 6), torch.randn(gru.num_layers * D, 3, 10)
    lengths = torch.tensor([7, 2, 5])
    want = _dequantised(q, gru)(x, h0, lengths)
    got = q._dequantized_run(x, h0, lengths)
    assert q.last_engine == "cpu"
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(got[1], want[1], rtol=0, atol=1e-6)
    widened = q.dequantized_weights()
    assert len(widened) == gru.num_layers * D and widened[0][0].dtype == torch.float32


def test_quantized_gru_keeps_the_gru_interface():
    torch.manual_seed(1)
    gru = gk.GRU(6, 10, batch_first=True).eval()
    q = gk.quantize(gru)
    x = torch.randn(3, 8, 6)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([8, 5, 2]), batch_first=True,
                                                     enforce_sorted=False)
    with torch.no_grad():
        y, _ = q(packed)
        want, _ = gru(packed)
    unpack = torch.nn.utils.rnn.pad_packed_sequence
    torch.testing.assert_close(unpack(y, batch_first=True)[0], unpack(want, batch_first=True)[0],
                               atol=0.05, rtol=0)
    unbatched, _ = q(x[0])
    assert unbatched.shape == (8, 10)
    assert sum(b.numel() for n, b in q.named_buffers() if n.endswith("_int8")) == 3 * 10 * (6 + 10)
    assert all(b.dtype == torch.int8 for n, b in q.named_buffers() if n.endswith("_int8"))
    assert "int8" in repr(q)
    with pytest.raises(ValueError, match="inference only"):
        q.train()
    with pytest.raises(ValueError, match="resets"):
        q(x, resets=torch.zeros(3, 8, dtype=torch.bool).T)
    with pytest.raises(TypeError, match="float32"):
        q(x.double())


def test_quantize_models_and_bad_arguments():
    torch.manual_seed(2)
    model = gk.Sequential([L.Input((None, 3)), L.Masking(0.0),
                           L.Bidirectional(L.GRU(8, return_sequences=True)), L.GRU(6),
                           L.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(5, 7, 3)).astype("float32")
    x[1, 4:] = 0
    want = model.predict(x)
    int8, bf16 = gk.quantize(model), gk.quantize(model, torch.bfloat16)
    assert sum(isinstance(m, QuantizedGRU) for m in int8.modules()) == 2
    assert not any(isinstance(m, QuantizedGRU) for m in model.modules())  # the original is untouched
    np.testing.assert_allclose(int8.predict(x), want, atol=0.02)
    got = bf16.predict(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=0.03)
    assert next(bf16.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be"):
        gk.quantize(model, torch.float16)
    with pytest.raises(ValueError, match="holds no grukit.GRU"):
        gk.quantize(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        gk.quantize("model")
    with pytest.raises(ValueError, match="zoneout"):
        gk.quantize(gk.GRU(3, 4, zoneout=0.1))


@pytest.mark.skipif(engines.compiled_cpu() is None, reason="the compiled CPU engine is not built")
@pytest.mark.parametrize("widen", [False, True], ids=["bf16-panels", "widened"])
@pytest.mark.parametrize("options", [{}, {"reset_after": False}, {"layer_norm": True, "zoneout": 0.2},
                                     {"bidirectional": True, "num_layers": 2}])
def test_bfloat16_inference_runs_its_weights_in_float32_on_the_step_engine(options, widen, monkeypatch):
    """Both ways a bfloat16 GRU runs: its bfloat16 panels on the step engine (large layers),
    or the float32 engine on its weights widened once (layers whose weights fit in cache)."""
    from grukit import steps

    monkeypatch.setattr(steps, "WIDEN_MAX_BYTES", 1 << 20 if widen else 0)
    torch.manual_seed(0)
    b16 = gk.quantize(gk.GRU(6, 21, **options), torch.bfloat16)
    exact = gk.GRU(6, 21, **options).eval()  # the bfloat16 weights widened to float32
    exact.load_state_dict({k: v.float() for k, v in b16.state_dict().items()})
    D = 2 if exact.bidirectional else 1
    x, h0 = torch.randn(9, 3, 6).bfloat16(), torch.randn(exact.num_layers * D, 3, 21).bfloat16()
    with torch.no_grad():
        y, h_n = b16(x, h0)
        want_y, want_h = exact(x.float(), h0.float())
    assert b16.last_engine == "cpu-bf16" and y.dtype == h_n.dtype == torch.bfloat16
    # float32 sums, then rounded once to bfloat16 (half a bfloat16 ulp: 2^-9 relative)
    torch.testing.assert_close(y.float(), want_y, rtol=2 ** -8, atol=1e-6)
    torch.testing.assert_close(h_n.float(), want_h, rtol=2 ** -8, atol=1e-6)
    lengths = torch.tensor([9, 4, 1])  # rows of their own lengths (a reverse direction from each one's end)
    with torch.no_grad():
        y, h_n = b16(x, h0, lengths)
        want_y, want_h = exact(x.float(), h0.float(), lengths)
    assert b16.last_engine == "cpu-bf16"
    torch.testing.assert_close(y.float(), want_y, rtol=2 ** -8, atol=1e-6)
    torch.testing.assert_close(h_n.float(), want_h, rtol=2 ** -8, atol=1e-6)
    assert steps.widens(b16) == widen
    b16(x.requires_grad_())  # gradients wanted: the reference engine in bfloat16
    assert b16.last_engine == "reference"


def _u8(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8.h's 8-bit activations, in float32 as the kernel computes them: q in [-127, 127]
    per row (q = u - 128) and the row's scale."""
    m = a.abs().amax(1)
    inv = torch.where(m > 0, torch.tensor(127.0) / m, torch.zeros_like(m))
    return torch.round(a * inv[:, None]), m / 127.0


def _u8_step(q: QuantizedGRU, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of a one-layer QuantizedGRU at a batch of 4 or more rows, replicated: the
    input and recurrent products as exact integer sums of 8-bit activations and int8
    weights, scaled as the kernel does."""
    b = {n: q.get_buffer(n) for n in q._layers[0]}
    H = q.hidden_size

    def product(a, part, rows=slice(None)):
        wq, sw = b[f"weight_{part}_l0_int8"].double(), b[f"weight_{part}_l0_scale"]
        bias = b[f"bias_{part}_l0"]
        qa, sa = _u8(a)
        dot = (qa.double() @ wq[rows].T).float()  # exact: integers below 2^24
        return dot * sa[:, None] * sw[rows] + bias[rows]

    gi = product(x, "ih")
    if q.reset_after:
        gh = product(h, "hh", slice(0, 3 * H))
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    else:
        gh = product(h, "hh", slice(0, 2 * H))
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:])
        n = torch.tanh(gi[:, 2 * H:] + product(r * h, "hh", slice(2 * H, 3 * H)))
    return n + z * (h - n)


@pytest.mark.skipif(engines.compiled_cpu() is None, reason="the compiled CPU engine is not built")
@pytest.mark.parametrize("I,H,B,reset_after", [(7, 13, 4, True), (600, 40, 9, False), (7, 64, 16, True),
                                               (33, 21, 5, False)])
def test_batched_int8_steps_take_8_bit_activations_summed_exactly(I, H, B, reset_after):
    """From 4 rows per step on, the input and recurrent products quantise x and the state
    to 8 bits per row and sum int8 products exactly (VNNI's vpdpbusd where the CPU has it, else
    vpmaddubsw's 16-bit pairs and vpmaddwd): one step equals its replica to float32 rounding, H odd too."""
    torch.manual_seed(H)
    gru = gk.GRU(I, H, reset_after=reset_after).eval()
    q = gk.quantize(gru)
    x, h0 = torch.randn(1, B, I), torch.randn(1, B, H) * 0.7
    with torch.no_grad():
        got = q(x, h0)[0][0]
        float_y = gru(x, h0)[0][0]
    torch.testing.assert_close(got, _u8_step(q, x[0], h0[0]), rtol=0, atol=2e-6)
    assert (got - float_y).abs().max() < 0.05  # weights to int8, the state to 8 bits
    T = 40  # many steps, rows of their own lengths: near the float model
    xs, lengths = torch.randn(T, B, I), torch.randint(1, T + 1, (B,))
    with torch.no_grad():
        got, got_h = q(xs, lengths=lengths)
        want, want_h = gru(xs, lengths=lengths)
    assert (got - want).abs().max() < 0.08 and (got_h - want_h).abs().max() < 0.08  # 600 inputs: 0.055
    assert all(torch.all(got[lengths[b]:, b] == 0) for b in range(B))  # past each row's end: zeros


@pytest.mark.skipif(engines.compiled_cpu() is None, reason="the compiled CPU engine is not built")
@pytest.mark.parametrize("reset_after", [True, False])
def test_batched_int8_sums_do_not_saturate_at_the_extremes(reset_after):
    """Without VNNI the 8-bit products go through vpmaddubsw, whose pairs are 16 bits: weights
    of -128 and 127 (a loaded state may hold -128) against activations of +-127 of the same
    signs put every pair at its largest, 2 * 128 * 127; the step still equals its exact replica.
    Here in the variant loaded; tests/test_isa.py runs the same case in every built variant."""
    torch.manual_seed(3)
    I, H, B = 64, 48, 5
    gru = gk.GRU(I, H, reset_after=reset_after).eval()
    q = gk.quantize(gru)
    for name in ("weight_ih_l0_int8", "weight_hh_l0_int8"):
        w = q.get_buffer(name)
        w.copy_(torch.where(torch.rand(w.shape) < 0.5, -128, 127).to(torch.int8))
    w_ih, w_hh = q.get_buffer("weight_ih_l0_int8").float(), q.get_buffer("weight_hh_l0_int8").float()
    x = torch.sign(w_ih[:B])[None] * 0.9  # row b: the signs of input-weight row b, all at +-127
    h0 = torch.sign(w_hh[:B])[None] * 0.5
    with torch.no_grad():
        got = q(x, h0)[0][0]
    torch.testing.assert_close(got, _u8_step(q, x[0], h0[0]), rtol=0, atol=2e-6)


@pytest.mark.skipif(engines.compiled_cpu() is None, reason="the compiled CPU engine is not built")
@pytest.mark.parametrize("widen", [False, True], ids=["bf16-panels", "widened"])
def test_bfloat16_inference_from_eight_threads_equals_the_serial_outputs(widen, monkeypatch):
    import threading

    from grukit import steps

    monkeypatch.setattr(steps, "WIDEN_MAX_BYTES", 1 << 20 if widen else 0)
    torch.manual_seed(0)
    b16 = gk.quantize(gk.GRU(6, 24, num_layers=2), torch.bfloat16)
    xs = [torch.randn(30, 2, 6).bfloat16() for _ in range(8)]
    with torch.no_grad():
        serial = [b16(x)[0] for x in xs]
    got: dict = {}

    def work(i):
        with torch.no_grad():
            for _ in range(5):
                got[i] = b16(xs[i])[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(got[i], serial[i]) for i in range(8))
