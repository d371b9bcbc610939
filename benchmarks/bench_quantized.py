"""Int8 (gk.quantize) against float32 inference on the fused CPU engine, side by side.

    python benchmarks/bench_quantized.py [--threads 2] [--repeats 30]

The grid's setting (docs/benchmarking.md): float32 inputs, T=100, I=64, torch.inference_mode(); rows
B=1 and B=32 at H=256 over a whole sequence, and streaming B=1, H=256 (one step
per call, state carried). float32 and int8 are timed in turns (Timer.interleaved).
Target (issue 7): B=1, H=256 inference >= 1.5x faster in int8 than in float32.
"""

import argparse

import torch

import grukit as gk
from grukit.app.bench import Timer

T, I = 100, 64


def sequence(m, x):
    def run():
        with torch.inference_mode():
            m(x)
    return run


def streaming(m, xs, H):
    def run():
        h = torch.zeros(1, 1, H)
        with torch.inference_mode():
            for x in xs:
                _, h = m(x, h)
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    timer = Timer(args.repeats, min_seconds=1.0)
    print(f"inference, T={T}, I={I}, {args.threads} threads; ms per call (median)")
    print(f"{'case':>28}{'float32':>10}{'int8':>10}{'ratio':>8}")
    rows = {}
    cases = (("B=1 H=256 sequence", 1, 256, False), ("B=32 H=256 sequence", 32, 256, False),
             ("B=1 H=256 streaming, 100 steps", 1, 256, True))
    for name, B, H, stream in cases:
        torch.manual_seed(0)
        fp32 = gk.GRU(I, H).eval()
        int8 = gk.quantize(fp32)
        if stream:
            xs = torch.randn(T, 1, 1, I)
            runs = {"float32": streaming(fp32, xs, H), "int8": streaming(int8, xs, H)}
        else:
            x = torch.randn(T, B, I)
            runs = {"float32": sequence(fp32, x), "int8": sequence(int8, x)}
        t = timer.interleaved(runs)
        rows[name] = t
        ratio = t["float32"] / t["int8"]
        print(f"{name:>28}{t['float32'] * 1e3:>10.3f}{t['int8'] * 1e3:>10.3f}{ratio:>7.2f}x")
    return rows


if __name__ == "__main__":
    main()
