"""What each gk.GRU option costs in training, against plain gk.GRU, side by side.

    python benchmarks/bench_options.py [--threads 2] [--repeats 10]

One training step (forward, backward of all outputs) on the fused CPU engine,
float32, T=100, I=H, for (B, H) in (1, 64), (32, 256), (128, 256); medians after
warm-ups, plain and every option timed in turns (Timer.interleaved). Options:
resets= (a random 5% of (step, row) flags), zoneout=0.1 (a fresh Bernoulli draw
per step, row and unit, included in the time), recurrent_dropout=0.2 (one (B, H)
mask per sequence) and layer_norm=True.
Target (issue 6): each option <= 1.3x plain gk.GRU.
"""

import argparse

import torch

import grukit as gk
from grukit.app.bench import Timer

OPTIONS = {  # name: (gk.GRU arguments, whether the call passes resets)
    "resets": ({}, True),
    "zoneout": ({"zoneout": 0.1}, False),
    "rec_dropout": ({"recurrent_dropout": 0.2}, False),
    "layer_norm": ({"layer_norm": True}, False),
}


def step(m, x, dy, **kw):
    def run():
        m.zero_grad(set_to_none=True)
        y, _ = m(x, **kw)
        y.backward(dy)
    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    timer = Timer(args.repeats, min_seconds=0.5)
    T = 100
    print(f"training step, T={T}, I=H, float32, {args.threads} threads; ms (median)")
    print(f"{'B':>5}{'H':>6}{'plain':>10}" + "".join(f"{name:>12}{'ratio':>8}" for name in OPTIONS))
    rows = {}
    for B, H in ((1, 64), (32, 256), (128, 256)):
        torch.manual_seed(0)
        m = gk.GRU(H, H)
        x, dy = torch.randn(T, B, H), torch.randn(T, B, H)
        resets = torch.rand(T, B) < 0.05
        runs = {"plain": step(m, x, dy)}
        for name, (kwargs, kw) in OPTIONS.items():
            torch.manual_seed(0)
            runs[name] = step(gk.GRU(H, H, **kwargs), x, dy, **({"resets": resets} if kw else {}))
        times = {name: 1000 * t for name, t in timer.interleaved(runs).items()}
        plain = times.pop("plain")
        rows[(B, H)] = (plain, times)
        cells = "".join(f"{t:>12.2f}{t / plain:>7.2f}x" for t in times.values())
        print(f"{B:>5}{H:>6}{plain:>10.2f}{cells}")
    return rows


if __name__ == "__main__":
    main()
