"""The compiled engine's instruction-set variants: the best one is loaded, GRUKIT_ISA forces
a lower one, each computes what the reference does, and the portable one holds no AVX.

`make test-isa` runs every kernel test file under each variant; this file checks each
variant in a fresh process on a smaller set."""

import functools
import json
import os
import shutil
import subprocess
import sys

import pytest

from grukit import engines

BUILT = engines.engine_info()["isas"]["built"] if engines.compiled_cpu() is not None else []
RUNNABLE = engines.engine_info()["isas"]["runnable"]
pytestmark = pytest.mark.skipif(not BUILT, reason="the compiled CPU engine is not built")

CHECK = r"""
import json, torch, grukit as gk
from grukit import engines
torch.manual_seed(0)
worst = 0.0
def diff(a, b):
    global worst
    worst = max(worst, float((a - b).abs().max()))
for reset_after in (True, False):
    for kw in ({}, {"bidirectional": True, "num_layers": 2}, {"zoneout": 0.2}, {"layer_norm": reset_after}):
        fused = gk.GRU(5, 24, reset_after=reset_after, dtype=torch.float64, **kw).train()
        ref = gk.GRU(5, 24, reset_after=reset_after, dtype=torch.float64, engine="reference", **kw).train()
        ref.load_state_dict(fused.state_dict())
        x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=True)
        outs = []
        for m in (fused, ref):
            torch.manual_seed(1)
            y, h = m(x, lengths=[7, 4, 1])
            g = torch.autograd.grad((y.sin().sum() + h.sum()), [x, *m.parameters()])
            outs.append([y, h, *g])
        for a, b in zip(*outs):
            diff(a, b)
    gru = gk.GRU(5, 40, reset_after=reset_after).eval()  # float32 inference: the one-call stack, split loop
    x = torch.randn(20, 1, 5)
    with torch.no_grad():
        diff(gru(x)[0].double(), gk.GRU.from_torch(gru.to_torch(), engine="reference")(x)[0].double()
             if reset_after else gru(x)[0].double())
m = gk.MinGRU(5, 16, engine="cpu").double()
r = gk.MinGRU(5, 16, engine="reference").double()
r.load_state_dict(m.state_dict())
x = torch.randn(70, 2, 5, dtype=torch.float64)
diff(m(x)[0], r(x)[0])
q = gk.quantize(gk.GRU(5, 32).eval())
with torch.no_grad():
    int8_out = q(torch.randn(6, 2, 5))[0]
    # a batch: 8-bit activations (VNNI in the AVX-512 build where the CPU has it, else 16-bit
    # arithmetic, or plain C++): the same integers, so the same step to float32 rounding
    qb = gk.quantize(gk.GRU(37, 21, reset_after=False).eval())
    batched = qb(torch.randn(1, 6, 37), torch.randn(1, 6, 21))[0]
    # and at the extremes: weights of -128/127 against activations of +-127 of the same signs put
    # every 16-bit pair of the AVX2 build's vpmaddubsw at its largest (tests/test_quantize.py)
    qe = gk.quantize(gk.GRU(64, 48).eval())
    for name in ("weight_ih_l0_int8", "weight_hh_l0_int8"):
        qe.get_buffer(name).copy_(torch.where(torch.rand(qe.get_buffer(name).shape) < 0.5, -128, 127))
    sign = lambda name: torch.sign(qe.get_buffer(name)[:5].float())[None]
    extreme = qe(sign("weight_ih_l0_int8") * 0.9, sign("weight_hh_l0_int8") * 0.5)[0]
    gru = gk.GRU(6, 19, num_layers=2, reset_after=False).eval()  # a stream equals the sequence
    xs = torch.randn(5, 2, 6)
    s = gk.stream(gru, 2)
    diff(torch.stack([s.step(x_t) for x_t in xs]).double(), gru(xs)[0].double())
    b16 = gk.quantize(gru, torch.bfloat16)  # bfloat16 weights, float32 sums
    exact = gk.GRU(6, 19, num_layers=2, reset_after=False).eval()
    exact.load_state_dict({k: v.float() for k, v in b16.state_dict().items()})
    bf16_err = float((b16(xs.bfloat16())[0].float() - exact(xs.bfloat16().float())[0]).abs().max())
print(json.dumps({"isa": engines.engine_info()["isa"], "worst": worst,
                  "int8_finite": bool(int8_out.isfinite().all()),
                  "batched": batched.flatten().tolist() + extreme.flatten().tolist(),
                  "bf16_err": bf16_err, "stream_compiled": s.compiled}))
"""


def test_the_best_variant_this_cpu_runs_is_loaded():
    info = engines.engine_info()
    assert info["isa"] in BUILT and info["isa"] in RUNNABLE
    wanted = os.environ.get("GRUKIT_ISA")
    if not wanted:
        assert info["isa"] == next(isa for isa in RUNNABLE if isa in BUILT)


@functools.lru_cache(maxsize=None)  # the loaded variant's run is every other one's yardstick: run it once
def _check(isa: str) -> dict:
    res = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GRUKIT_ISA": isa})
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
def test_each_variant_computes_what_the_reference_does(isa):
    if isa not in BUILT or isa not in RUNNABLE:
        pytest.skip(f"{isa} is not built here or this CPU cannot run it")
    out = _check(isa)
    assert out["isa"] == isa and out["stream_compiled"]
    assert out["worst"] < 1e-6 and out["int8_finite"], out
    assert out["bf16_err"] < 2e-2, out  # the outputs rounded once to bfloat16
    # the batched int8 step of every variant equals the best one's (the same integer sums)
    loaded = engines.engine_info()["isa"]
    best = out if isa == loaded else _check(loaded)
    assert max(abs(a - b) for a, b in zip(out["batched"], best["batched"], strict=True)) < 1e-6


def test_a_bad_or_too_high_isa_is_ignored_with_a_note():
    code = "import json, grukit; print(json.dumps(grukit.engine_info()['isas']))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "GRUKIT_ISA": "sse9"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "not one of" in json.loads(res.stdout)["note"]


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_the_portable_variant_holds_no_instruction_above_the_baseline():
    """No AVX (ymm) or AVX-512 (zmm) register in _C_base, no AVX-512 register or mask
    instruction in _C_avx2: a CPU without them never runs them, since only a variant it can
    run is loaded (_C_avx512 only where torch reports AVX512)."""
    import importlib.util

    for isa, banned in (("base", ("%ymm", "%zmm")), ("avx2", ("%zmm", "%k1", "{%k"))):
        spec = importlib.util.find_spec(f"grukit._C_{isa}")
        if spec is None:
            continue
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", spec.origin], capture_output=True,
                              text=True, check=True).stdout
        assert len(text) > 10_000  # it disassembled something
        found = {reg: text.count(reg) for reg in banned}
        assert not any(found.values()), (isa, found)
