"""Quickstart: a PyTorch-style loop that trains gk.GRU to forecast a sine wave.

A user's nn.Module holds gk.GRU + nn.Linear and is trained with Adam and
MSELoss in a plain loop; the test MSE is printed next to a naive baseline
(tomorrow = today). Runs in seconds on 2 CPU cores:

    python examples/quickstart.py [--epochs 30] [--hidden 32] [--seed 0]
"""

import argparse
import math
import time

import torch
from torch import nn

import grukit as gk


class Forecaster(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.gru = gk.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):  # x: (B, T, 1) -> (B, 1), the next value
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def windows(series: torch.Tensor, width: int):
    x = series.unfold(0, width + 1, 1)  # (N, width + 1)
    return x[:, :width, None], x[:, width:]  # (N, width, 1), (N, 1)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    t = torch.arange(1200, dtype=torch.float32)
    series = torch.sin(2 * math.pi * t / 50) + 0.05 * torch.randn_like(t)
    x, y = windows(series, args.window)
    split = int(0.8 * len(x))  # train on the past, test on the future
    x_tr, y_tr, x_te, y_te = x[:split], y[:split], x[split:], y[split:]

    model = Forecaster(args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.MSELoss()
    start = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(x_tr), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1:3d}  train mse {loss.item():.5f}")
    with torch.no_grad():
        test_mse = loss_fn(model(x_te), y_te).item()
    naive_mse = loss_fn(x_te[:, -1], y_te).item()
    print(f"test mse {test_mse:.5f}  vs naive (last value) {naive_mse:.5f}  "
          f"in {time.perf_counter() - start:.1f} s on engine {model.gru.last_engine!r}")
    return {"test_mse": test_mse, "naive_mse": naive_mse}


if __name__ == "__main__":
    main()
