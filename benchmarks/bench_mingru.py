"""minGRU training vs gk.GRU and torch.nn.GRU, side by side in one process.

    python benchmarks/bench_mingru.py [--threads 2] [--repeats 3] [--steps 64 512 4096]

One training step (forward over the whole sequence, backward of a random-weighted
sum of all outputs) at B=32, I=H=256, float32, for T = 64, 512, 4096; medians after
warm-ups. gk.MinGRU runs on the fused CPU scan and, for reference, on the log-space
scan in PyTorch ops (engine="reference"). BENCH/issue target: MinGRU >= 4x
torch.nn.GRU at T=4096.
"""

import argparse

import torch

import grukit as gk
from grukit.app.bench import Timer


def train_step(module, x, dy):
    def step():
        module.zero_grad(set_to_none=True)
        y, _ = module(x)
        y.backward(dy)
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, nargs="+", default=[64, 512, 4096])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--skip-reference-above", type=int, default=512,
                   help="time the log-space reference scan only up to this T (it is slow)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, H = args.batch, args.hidden
    models = {
        "torch.nn.GRU": torch.nn.GRU(H, H),
        "gk.GRU": gk.GRU(H, H),
        "gk.MinGRU": gk.MinGRU(H, H),
        "gk.MinGRU reference": gk.MinGRU(H, H, engine="reference"),
    }
    print(f"training step, B={B}, I=H={H}, float32, {args.threads} threads; ms (median of {args.repeats})")
    print(f"{'T':>6} " + "".join(f"{name:>22}" for name in models) + f"{'MinGRU vs nn.GRU':>18}"
          f"{'MinGRU vs gk.GRU':>18}")
    rows = {}
    for T in args.steps:
        x = torch.randn(T, B, H)
        dy = torch.randn(T, B, H)
        times = {}
        for name, m in models.items():
            if name.endswith("reference") and T > args.skip_reference_above:
                times[name] = float("nan")
                continue
            times[name] = 1000 * Timer(args.repeats, min_seconds=0)(train_step(m, x, dy))
        rows[T] = times
        print(f"{T:>6} " + "".join(f"{times[n]:>22.1f}" for n in models)
              + f"{times['torch.nn.GRU'] / times['gk.MinGRU']:>17.2f}x"
              + f"{times['gk.GRU'] / times['gk.MinGRU']:>17.2f}x")
    return rows


if __name__ == "__main__":
    main()
