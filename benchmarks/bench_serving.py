"""Serving on the CPU: gk.stream's step time against ONNX Runtime and torch.nn.GRU, and
int8 / bfloat16 inference against float32, side by side in one run.

    python benchmarks/bench_serving.py [--threads 2] [--quick] [--out serving.md]

1. Streaming, B=1, I=64, H=256, one step per call, the state carried: gk.stream over
   gk.GRU, a Sequential(GRU + Dense(64)) and gk.MinGRU (NumPy in, NumPy out); ONNX
   Runtime on the same GRU's weights (one ONNX GRU node, its state passed in and out
   each call); torch.nn.GRU called with one step at a time.
2. Sequence inference (T=100, I=64) over the grid of benchmarks/README.md and at
   B=1, H in {256, 1024}: gk.quantize(model) (int8) and gk.quantize(model,
   torch.bfloat16) against the float32 gk.GRU, the same weights.
Ratios are the rival's (or float32's) median time over ours: above 1, ours is faster.
Each row's callables run in turns (benchmarks' Timer.interleaved), so that a slow
spell of the machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import grukit as gk  # noqa: E402
from grukit.app.bench import Timer, _onnx_session  # noqa: E402

I, T, STEPS = 64, 100, 200
GRID = [(1, 64), (32, 64), (32, 256), (128, 256), (32, 1024), (1, 256), (1, 1024)]


def streaming(timer: Timer, H: int = 256) -> list[str]:
    torch.manual_seed(0)
    ref = torch.nn.GRU(I, H)
    gru = gk.GRU.from_torch(ref).eval()
    seq = gk.Sequential([gk.layers.GRU(H, return_sequences=True), gk.layers.Dense(64)])
    xs = np.random.default_rng(0).standard_normal((STEPS, 1, I)).astype(np.float32)
    seq.predict(xs[:2].transpose(1, 0, 2))  # builds it
    seq.layers[0].gru.load_state_dict(gru.state_dict())
    mingru = gk.MinGRU(I, H).eval()
    streams = {"gk.stream(GRU)": gk.stream(gru), "gk.stream(Sequential GRU+Dense)": gk.stream(seq),
               "gk.stream(MinGRU)": gk.stream(mingru)}
    # the same answers first: the stream against the whole sequence and against ONNX Runtime
    want = gru(torch.from_numpy(xs))[0].detach().numpy()[:, 0]
    got = np.stack([streams["gk.stream(GRU)"].step(x) for x in xs])[:, 0]
    assert np.abs(got - want).max() < 1e-5, "the stream differs from the sequence call"
    sess = _onnx_session(gru, 1)
    fns = {}
    for name, s in streams.items():
        def loop(s=s):
            s.reset()
            for x in xs:
                s.step(x)
        fns[name] = loop
    if sess is not None:
        feeds = [x[None] for x in xs]

        def ort():
            h = np.zeros((1, 1, H), np.float32)
            for x in feeds:
                _, h = sess.run(None, {"input": x, "h0": h})
        fns["ONNX Runtime"] = ort
    xt = [torch.from_numpy(x)[None] for x in xs]

    def torch_loop():
        h = torch.zeros(1, 1, H)
        with torch.inference_mode():
            for x in xt:
                _, h = ref(x, h)
    fns["torch.nn.GRU"] = torch_loop
    for fn in fns.values():  # warm up: the first second of stepping runs slower (caches, clocks)
        start = time.perf_counter()
        while time.perf_counter() - start < 0.5:
            fn()
    t = {k: v / STEPS for k, v in timer.interleaved(fns).items()}
    # each also timed alone: thread pools that spin after their work (OpenMP's, ONNX
    # Runtime's) slow whatever runs next on two cores, so turns can cost the rivals
    alone = {k: timer(fn) / STEPS for k, fn in fns.items()}
    ours, ours_alone = t["gk.stream(GRU)"], alone["gk.stream(GRU)"]
    rows = [f"### Streaming, B=1, I={I}, H={H}, one step per call (us per step)", "",
            "| what | in turns: us/step | vs gk.stream(GRU) | alone: us/step | vs gk.stream(GRU) alone |",
            "|---|---|---|---|---|"]
    for name, v in t.items():
        rows.append(f"| {name} | {v * 1e6:.1f} | {v / ours:.2f}x | {alone[name] * 1e6:.1f} | "
                    f"{alone[name] / ours_alone:.2f}x |")
    ort = (f"{t['ONNX Runtime'] / ours:.2f}x in turns, {alone['ONNX Runtime'] / ours_alone:.2f}x alone"
           if "ONNX Runtime" in t else "not installed")
    rows += ["", f"- gk.stream(GRU) vs ONNX Runtime: {ort}; vs torch.nn.GRU one step per call: "
             f"{t['torch.nn.GRU'] / ours:.2f}x / {alone['torch.nn.GRU'] / ours_alone:.2f}x; Sequential's "
             f"step {t['gk.stream(Sequential GRU+Dense)'] / ours:.2f}x / "
             f"{alone['gk.stream(Sequential GRU+Dense)'] / ours_alone:.2f}x the bare GRU's", ""]
    return rows


def precision(timer: Timer) -> list[str]:
    rows = [f"### Sequence inference, T={T}, I={I}: int8 and bfloat16 against float32 (ms per call)", "",
            "| B | H | float32 | int8 | bfloat16 |", "|---|---|---|---|---|"]
    for B, H in GRID:
        torch.manual_seed(0)
        gru = gk.GRU(I, H).eval()
        q8, b16 = gk.quantize(gru), gk.quantize(gru, torch.bfloat16)
        x = torch.randn(T, B, I)
        xb = x.bfloat16()

        def call(m, x):
            def run():
                with torch.inference_mode():
                    return m(x)
            return run
        t = timer.interleaved({"f32": call(gru, x), "int8": call(q8, x), "bf16": call(b16, xb)})
        assert b16.last_engine == "cpu-bf16" and q8.last_engine == "cpu-int8"
        f32, i8, b16 = t["f32"], t["int8"], t["bf16"]
        rows.append(f"| {B} | {H} | {f32 * 1e3:.3f} | {i8 * 1e3:.3f} ({f32 / i8:.2f}x) | "
                    f"{b16 * 1e3:.3f} ({f32 / b16:.2f}x) |")
    return rows + [""]


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    timer = Timer(repeats=5, min_seconds=0.3) if args.quick else Timer(repeats=10, min_seconds=1.0)
    info = gk.engine_info()
    lines = [f"## Serving: {datetime.date.today()}, {machine()}, engine {info.get('isa', '?')}", "",
             "command: python benchmarks/bench_serving.py"
             + (f" --threads {args.threads}" if args.threads else ""), ""]
    lines += streaming(timer)
    lines += precision(timer)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
