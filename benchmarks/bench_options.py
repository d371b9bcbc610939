"""What each gk.GRU option costs in training, against plain gk.GRU, side by side.

    python benchmarks/bench_options.py [--threads 2] [--repeats 10]

One training step (forward, backward of all outputs) on the fused CPU engine,
float32, T=100, I=H, for (B, H) in (1, 64), (32, 256), (128, 256); medians after
warm-ups. Options measured so far: resets= (a random 5% of (step, row) flags) and
zoneout=0.1 (a fresh Bernoulli draw per step, row and unit, included in the time).
Target (issue 6): each option <= 1.3x plain gk.GRU.
"""

import argparse

import torch

import grukit as gk
from grukit.bench import Timer


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
    print(f"{'B':>5}{'H':>6}{'plain':>10}{'resets':>10}{'ratio':>8}{'zoneout':>10}{'ratio':>8}")
    rows = {}
    for B, H in ((1, 64), (32, 256), (128, 256)):
        torch.manual_seed(0)
        m = gk.GRU(H, H)
        x, dy = torch.randn(T, B, H), torch.randn(T, B, H)
        resets = torch.rand(T, B) < 0.05
        plain = 1000 * timer(step(m, x, dy))
        with_resets = 1000 * timer(step(m, x, dy, resets=resets))
        m.zoneout = 0.1
        with_zoneout = 1000 * timer(step(m, x, dy))
        m.zoneout = 0.0
        rows[(B, H)] = (plain, with_resets, with_zoneout)
        print(f"{B:>5}{H:>6}{plain:>10.2f}{with_resets:>10.2f}{with_resets / plain:>7.2f}x"
              f"{with_zoneout:>10.2f}{with_zoneout / plain:>7.2f}x")
    return rows


if __name__ == "__main__":
    main()
