"""How much of a `fit` epoch is the GRU engine, and how much the framework around it.

    python benchmarks/bench_fit.py [--threads 2] [--samples 3200] [--repeats 5]

Model: Sequential([layers.GRU(64), layers.Dense(1)]), adam, mse; data (N, T=100,
I=64) float32, batch 32. Times, side by side in one process (medians after a
warm-up): a whole `fit` epoch, and the engine alone doing the same work: for each
batch, the GRU forward and the backward of its last output through all steps.
The target (docs/benchmarking.md): the engine is >= 50% of the epoch.
"""

import argparse

import numpy as np
import torch

import grukit as gk
from grukit import layers
from grukit.app.bench import Timer


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=3200)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 100, 64)).astype("float32")
    y = rng.normal(size=(args.samples, 1)).astype("float32")
    torch.manual_seed(0)
    model = gk.Sequential([layers.GRU(64), layers.Dense(1)])
    model.compile("adam", "mse")
    epoch = Timer(args.repeats, min_seconds=0)(lambda: model.fit(x, y, epochs=1, batch_size=32, verbose=0))

    gru = model.layers[0].gru
    xt = torch.from_numpy(x)
    params = list(gru.parameters())

    def engine_only():
        for start in range(0, args.samples, 32):
            out, _ = gru(xt[start:start + 32])
            torch.autograd.grad(out[:, -1].sum(), params)

    engine = Timer(args.repeats, min_seconds=0)(engine_only)
    print(f"engine {gk.engine_info()['auto']}, {args.threads} threads, {args.samples} samples, batch 32")
    print(f"fit epoch {epoch * 1e3:.1f} ms; GRU engine alone {engine * 1e3:.1f} ms; "
          f"engine share {100 * engine / epoch:.0f}% (target >= 50%)")


if __name__ == "__main__":
    main()
