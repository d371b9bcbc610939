"""grukit's CPU engine against torch.nn.GRU at sizes off docs/benchmarking.md's grid.

    python benchmarks/bench_sizes.py [--threads 2] [--repeats 10] [--min-seconds 0.5]

The grid (`make bench`) holds T=100 and I=64; users run other shapes: one sequence
through a wide layer (B=1, H=768-1024, short and long T), inputs wider than the state
(I=300-1024, the input projection then outweighs the recurrence), short sequences, one
step per call (a decoder run step by step), two or three rows, many rows of a small layer,
stacks. Each row times gk.GRU and torch.nn.GRU with the same
weights, side by side in this process (turn about: grukit.app.bench.Timer.interleaved),
inference (torch.inference_mode) and a training step (forward, then the gradients of the
summed output with respect to the input, h0 and every weight); ratios are torch's median
time over grukit's. The outputs are checked equal (1e-4) before timing.
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch

import grukit as gk
from grukit.app.bench import Timer, _infer, _train_step

# (B, H, T, I, layers, bidirectional)
SIZES = [
    (1, 768, 50, 64, 1, False),
    (1, 1024, 4, 64, 1, False),
    (1, 1024, 50, 64, 1, False),
    (1, 1024, 50, 1024, 1, False),
    (2, 1024, 50, 64, 1, False),
    (8, 1024, 50, 64, 1, False),
    (64, 256, 20, 512, 1, False),
    (64, 256, 20, 512, 3, False),
    (64, 256, 100, 512, 1, False),
    (32, 256, 100, 256, 1, False),
    (256, 128, 50, 300, 1, False),
    (512, 8, 100, 8, 1, False),
    (16, 128, 400, 40, 2, True),
    (1, 16, 1000, 1, 1, False),
    # one step per call (a decoder run step by step) and a few steps (session 19)
    (24, 200, 1, 13, 2, False),
    (100, 384, 1, 13, 2, True),
    (24, 200, 1, 400, 1, False),
    (24, 200, 3, 200, 1, False),
    # two or three rows through a recurrent weight of 2-4 MB (session 19)
    (2, 500, 10, 100, 1, False),
    (3, 500, 100, 64, 1, False),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=0.5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    timer = Timer(args.repeats, args.min_seconds)
    info = gk.engine_info()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"grukit's engine variant {info['isa']}")
    print("\n| B | H | T | I | layers | mode | torch.nn.GRU ms | gk.GRU ms | vs nn.GRU |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = []
    for B, H, T, I, layers, bi in SIZES:
        torch.manual_seed(0)
        theirs = torch.nn.GRU(I, H, layers, bidirectional=bi)
        ours = gk.GRU(I, H, layers, bidirectional=bi)
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(T, B, I, requires_grad=True)
        h0 = torch.randn(layers * (2 if bi else 1), B, H, requires_grad=True)
        with torch.inference_mode():
            torch.testing.assert_close(ours(x, h0)[0], theirs(x, h0)[0], rtol=1e-4, atol=1e-4)
        for mode, make in (("infer", _infer), ("train", _train_step)):
            got = timer.interleaved({"torch": make(theirs, x, h0), "grukit": make(ours, x, h0)})
            ratio = got["torch"] / got["grukit"]
            worst.append(ratio)
            print(f"| {B} | {H} | {T} | {I} | {layers}{' bi' if bi else ''} | {mode} | "
                  f"{got['torch'] * 1e3:.2f} | {got['grukit'] * 1e3:.2f} | {ratio:.2f}x |", flush=True)
    print(f"\nlowest ratio {min(worst):.2f}x; rows below 1.0x: {sum(r < 1 for r in worst)} of {len(worst)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
