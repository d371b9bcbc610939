"""Train the forecast job's pretrained forecaster (grukit/app/pretrained.py) on synthetic series.

    python tools/pretrain_forecaster.py [--steps 10000] [--units 96] [--members 2] [--out PATH]
                                        [--real SHARE] [--kernelsynth SHARE] [--mixup SHARE]

Writes grukit/app/pretrained_forecaster.safetensors (the file grukit ships). The series are
drawn from a generator (``series``): no real data, so no series the forecaster is measured
or judged on was seen in training. With ``--real SHARE`` that share of each batch comes from
real series (tools/forecast_corpus.py, ``real_examples``), an option measured and not used
for the shipped file (docs/results.md, session 14). ``--kernelsynth SHARE`` and ``--mixup SHARE``
replace those shares of the synthetic series with KernelSynth series (Gaussian-process samples,
``kernel_series``) and mixtures of others (``mixup``), as Chronos builds its synthetic data;
measured and not used either (docs/results.md, session 26).
Each training example is one origin in one series: up to
pretrained.LONGEST past values read as the job reads them (pretrained.inputs), and the next
pretrained.STEPS values to forecast in the same units; the loss is Huber's (delta 3) on those
scaled units. Each network is trained from its own seed (--seed, --seed + 1, ...) and
the file holds them all; the job averages their forecasts. Deterministic for a given --seed
on one machine (about 15 minutes a network on 2 cores at the defaults).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from grukit.app import pretrained  # noqa: E402


def _ar_path(n: int, coef: tuple[float, ...], shocks: np.ndarray) -> np.ndarray:
    """x[i] = shocks[i] + sum_k coef[k] x[i - 1 - k]: an AR path from zero."""
    x = np.zeros(n)
    for i in range(n):
        x[i] = shocks[i] + sum(c * x[i - 1 - k] for k, c in enumerate(coef) if i - 1 - k >= 0)
    return x


def series(rng: np.random.Generator, n: int, seasonal: float = 0.35) -> np.ndarray:
    """One synthetic series of n steps, in the units the network sees (noise of spread 0.1-1):
    AR(1) noise (heavy-tailed sometimes), a random-walk level, rarely an integrated random
    walk, a linear / changing / damped trend, a season of 4-52 steps (smooth or an arbitrary
    profile, slowly changing amplitude), a quasi-cycle (AR(2) with complex roots, as sunspots),
    level shifts and outliers, each with its own probability."""
    t = np.arange(n, dtype=float)
    shocks = rng.standard_t(3, n) * 0.7 if rng.random() < 0.15 else rng.standard_normal(n)
    x = _ar_path(n, (rng.uniform(-0.4, 0.95) if rng.random() < 0.7 else 0.0,), shocks)
    x *= np.exp(rng.uniform(np.log(0.1), 0.0))  # from smooth to noisy
    if rng.random() < 0.6:  # a random-walk level
        x += np.cumsum(rng.standard_normal(n)) * np.exp(rng.uniform(np.log(0.05), np.log(2.0)))
    if rng.random() < 0.1:  # a random-walk slope
        x += np.cumsum(np.cumsum(rng.standard_normal(n))) * rng.uniform(0.01, 0.1)
    if rng.random() < 0.6:  # a trend: straight, with a change of slope, or damped
        slope = rng.standard_normal() * np.exp(rng.uniform(np.log(0.02), np.log(5.0)))
        trend = slope * t
        if rng.random() < 0.3:
            trend += rng.standard_normal() * abs(slope) * np.maximum(t - rng.integers(n // 4, n), 0)
        if rng.random() < 0.2:
            phi = rng.uniform(0.9, 0.99)
            trend = slope * (1 - phi ** (t + 1)) / (1 - phi)
        x += trend
    if rng.random() < seasonal:
        p = int(rng.choice([4, 4, 7, 12, 12, 12, 24, 52, 5, 6, 13, 26]))
        shape = np.zeros(n)
        for j in range(1, int(rng.integers(1, min(4, p // 2) + 1)) + 1):
            a, b = rng.standard_normal(2) / j
            shape += a * np.sin(2 * np.pi * j * t / p) + b * np.cos(2 * np.pi * j * t / p)
        if rng.random() < 0.3:
            shape = rng.standard_normal(p)[(t % p).astype(int)]
        size = np.exp(rng.uniform(-1.0, 2.5))
        drift = np.cumsum(rng.standard_normal(n)) * rng.uniform(0, 0.02)  # the amplitude wanders
        x += size * (1 + drift) * shape / (shape.std() + 1e-9)
    if rng.random() < 0.12:  # a quasi-cycle of 6-14 steps
        period, rho = rng.uniform(6, 14), rng.uniform(0.85, 0.99)
        x += _ar_path(n, (2 * rho * np.cos(2 * np.pi / period), -rho ** 2),
                      rng.standard_normal(n)) * rng.uniform(1, 5)
    if rng.random() < 0.1:  # level shifts
        for _ in range(int(rng.integers(1, 3))):
            x[int(rng.integers(1, n)):] += rng.standard_normal() * rng.uniform(2, 10)
    if rng.random() < 0.1:  # outliers
        m = int(rng.integers(1, 4))
        x[rng.integers(0, n, m)] += rng.standard_normal(m) * 6
    return x


# KernelSynth (Ansari et al. 2024, Chronos): series drawn from a Gaussian process whose kernel is
# a random sum or product of a few from a bank; periods in steps, length scales on t in [0, 1]
PERIODS = (4, 5, 6, 7, 12, 13, 24, 26, 52)


def _kernel(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """One kernel of the bank on the times t (n,): (n, n)."""
    d = t[:, None] - t[None, :]
    kind = rng.choice(["linear", "rbf", "rq", "periodic", "periodic", "white", "constant"])
    if kind == "linear":
        return (t[:, None] - rng.uniform(-0.5, 1.5)) * (t[None, :] - rng.uniform(-0.5, 1.5))
    if kind == "rbf":
        scale = float(rng.choice([0.02, 0.1, 0.5, 2.0]))
        return np.exp(-0.5 * (d / scale) ** 2)
    if kind == "rq":
        alpha, scale = float(rng.choice([0.1, 1.0, 10.0])), float(rng.choice([0.05, 0.2, 1.0]))
        return (1 + d ** 2 / (2 * alpha * scale ** 2)) ** -alpha
    if kind == "periodic":
        period = int(rng.choice(PERIODS)) / max(len(t) - 1, 1)
        return np.exp(-2 * np.sin(np.pi * np.abs(d) / period) ** 2 / float(rng.choice([0.5, 1.0, 2.0])) ** 2)
    if kind == "white":
        return np.eye(len(t)) * float(rng.choice([0.01, 0.1, 1.0]))
    return np.ones_like(d)


def kernel_series(rng: np.random.Generator, n: int) -> np.ndarray:
    """One KernelSynth series of n steps: a GP sample under 1-5 kernels of the bank joined by
    random sums and products, in the units the network reads (pretrained.normalise: relative to
    its last value, over its mean absolute change)."""
    t = np.linspace(0.0, 1.0, n)
    k = _kernel(rng, t)
    for _ in range(int(rng.integers(0, 5))):
        other = _kernel(rng, t)
        k = k + other if rng.random() < 0.5 else k * other
    k = k + np.eye(n) * 1e-6 * (np.abs(np.diag(k)).max() + 1e-6)
    try:
        chol = np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(k)
        chol = v * np.sqrt(np.clip(w, 0, None))
    return pretrained.normalise(chol @ rng.standard_normal(n))[0]


def mixup(rng: np.random.Generator, pool: list[np.ndarray]) -> np.ndarray:
    """TSMixup (Chronos): a convex combination of 2-3 series of the pool, cut to the shortest, each
    in the units the network reads (pretrained.normalise)."""
    picks = [pool[int(rng.integers(len(pool)))] for _ in range(int(rng.integers(2, 4)))]
    n = min(len(p) for p in picks)
    w = rng.dirichlet(np.ones(len(picks)))
    return sum(wi * pretrained.normalise(p[-n:])[0] for wi, p in zip(w, picks, strict=True))


def examples(rng: np.random.Generator, pool: list[np.ndarray],
             count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """count (input, target) pairs from random origins of random series of the pool. A third
    of the series are read as the logarithm of a positive additive series (as the job reads
    a positive series); a third of the histories are cut short (8 steps or more)."""
    steps, longest = pretrained.STEPS, pretrained.LONGEST
    x = np.zeros((count, longest, 2), np.float32)
    y = np.zeros((count, steps), np.float32)
    for i in range(count):
        s = pool[int(rng.integers(len(pool)))]
        if rng.random() < 0.3:
            low, span = s.min(), s.max() - s.min() + 1e-9
            s = np.log(s - low + span * rng.uniform(0.2, 5))
        o = int(rng.integers(8, len(s) - steps))
        first = o + 1 - min(o + 1, longest)
        if rng.random() < 0.3:
            first = int(rng.integers(first, o - 6))
        x[i], last, change = pretrained.inputs(s[first:o + 1])
        y[i] = np.clip((s[o + 1:o + 1 + steps] - last) / change, -pretrained.CLIP, pretrained.CLIP)
    return torch.from_numpy(x), torch.from_numpy(y), torch.ones(count, steps)


def real_pool(corpus: list[tuple[str, np.ndarray, int]]) -> list[tuple[np.ndarray, int, bool]]:
    """The corpus as the job reads a series: logarithms for a positive one; whether its season
    is taken out (pretrained.is_seasonal on the whole series)."""
    pool = []
    for _, v, season in corpus:
        v = np.log(v) if (v > 0).all() else np.asarray(v, dtype=float)
        pool.append((v, season, pretrained.is_seasonal(v, season)))
    return pool


def real_examples(rng: np.random.Generator, pool: list[tuple[np.ndarray, int, bool]],
                  count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """count (input, target, mask) triples from random origins of random real series (each
    series equally likely), read as pretrained.forecasts reads a series: the season taken out
    with the indices of the last SEASONS_BACK seasons before the origin, the last LONGEST values
    relative to the last one over their mean absolute change. The mask marks the targets the
    series has (an origin near its end has fewer than STEPS); a third of the histories are cut
    short (8 steps or more), as in ``examples``."""
    steps, longest = pretrained.STEPS, pretrained.LONGEST
    x = np.zeros((count, longest, 2), np.float32)
    y = np.zeros((count, steps), np.float32)
    mask = np.zeros((count, steps), np.float32)
    for i in range(count):
        v, season, seasonal = pool[int(rng.integers(len(pool)))]
        o = int(rng.integers(7, len(v) - 1))
        first = o + 1 - min(o + 1, longest)
        if rng.random() < 0.3 and o - 6 > first:
            first = int(rng.integers(first, o - 6))
        past, added = pretrained.history(v, o, first, steps, season, seasonal)
        future = v[o + 1:o + 1 + steps] - added[:len(v) - o - 1]
        x[i], last, change = pretrained.inputs(past)
        y[i, :len(future)] = np.clip((future - last) / change, -pretrained.CLIP, pretrained.CLIP)
        mask[i, :len(future)] = 1.0
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10000, help="optimiser steps per network")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--units", type=int, default=96)
    p.add_argument("--series", type=int, default=30000, help="synthetic series drawn")
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=pretrained.WEIGHTS)
    p.add_argument("--real", type=float, default=0.0,
                   help="the share of each batch drawn from real series (tools/forecast_corpus.py)")
    p.add_argument("--kernelsynth", type=float, default=0.0,
                   help="the share of the synthetic series drawn by KernelSynth (kernel_series)")
    p.add_argument("--mixup", type=float, default=0.0,
                   help="the share of the synthetic series that are mixtures of others (mixup)")
    p.add_argument("--members", type=int, default=2,
                   help="networks trained, from seeds seed, seed + 1, ...; the job averages them")
    args = p.parse_args(argv)
    for name in ("real", "kernelsynth", "mixup"):
        if not 0 <= getattr(args, name) <= 1:
            p.error(f"--{name} is a share in [0, 1], got {getattr(args, name)}")
    if args.kernelsynth + args.mixup > 1:
        p.error(f"--kernelsynth and --mixup share the synthetic series: their sum must be at most 1, got "
                f"{args.kernelsynth} + {args.mixup}")
    torch.set_num_threads(2)
    nets = []
    for m in range(args.members):
        print(f"network {m + 1} of {args.members} (seed {args.seed + m})", flush=True)
        nets.append(train(args, args.seed + m))
    pretrained.save(nets, args.out)
    print(f"wrote {args.out}")
    return 0


def train(args: argparse.Namespace, seed: int) -> pretrained.Net:
    """One network, from its own seed: its own series, examples and initial weights."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pool = [series(rng, int(rng.integers(40, 320))) for _ in range(args.series)]
    if args.kernelsynth > 0:  # that share of the pool replaced by KernelSynth series
        for i in range(int(args.series * args.kernelsynth)):
            pool[i] = kernel_series(rng, int(rng.integers(40, 320)))
    if args.mixup > 0:  # and the next share by mixtures of the pool as it stands
        first = int(args.series * args.kernelsynth)
        base = list(pool)
        for i in range(first, first + int(args.series * args.mixup)):
            pool[i] = mixup(rng, base)
    real = None
    if args.real > 0:
        import forecast_corpus

        real = real_pool(forecast_corpus.load())
        n_real = int(round(args.batch * args.real))
    held_x, held_y, _ = examples(np.random.default_rng(seed + 1),
                              [series(np.random.default_rng([seed, 2, i]), 200) for i in range(500)], 2048)
    net = pretrained.Net(args.units)
    opt = torch.optim.Adam(net.parameters(), lr=args.learning_rate)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:  # linear decay to 5%
            group["lr"] = args.learning_rate * max(0.05, 1 - step / args.steps)
        if real is None:
            x, y, mask = examples(rng, pool, args.batch)
        else:
            x, y, mask = (torch.cat(pair) for pair in zip(examples(rng, pool, args.batch - n_real),
                                                             real_examples(rng, real, n_real), strict=True))
        loss = torch.nn.functional.huber_loss(net(x), y, delta=3.0, reduction="none")
        loss = (loss * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 500 == 0 or step == args.steps:
            with torch.no_grad():
                held = torch.nn.functional.mse_loss(net(held_x), held_y).item()
            print(f"step {step}/{args.steps} ({time.perf_counter() - start:.0f} s): training loss "
                  f"{loss.item():.3f}, held-out MSE {held:.3f} (the last value: {(held_y ** 2).mean():.3f})",
                  flush=True)
    return net


if __name__ == "__main__":
    sys.exit(main())
