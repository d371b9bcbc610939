"""grukit's CPU engine against torch.nn.GRU at sizes off docs/benchmarking.md's grid.

    python benchmarks/bench_sizes.py [--threads 2] [--repeats 10] [--min-seconds 0.5] [--only TABLE ...]

The grid (`make bench`) holds T=100 and I=64; users run other shapes: one sequence
through a wide layer (B=1, H=768-1024, short and long T), inputs wider than the state
(I=300-1024, the input projection then outweighs the recurrence), short sequences, one
step per call (a decoder run step by step), two or three rows, many rows of a small layer,
stacks; then gk.GRUCell against torch.nn.GRUCell, a whole decoder run step by step, and
sequences of different lengths (a PackedSequence, or a padded batch with lengths=), and
float64 layers.
Each row times gk.GRU and torch.nn.GRU with the same weights, side by side in this process
(turn about: grukit.app.bench.Timer.interleaved), inference (torch.inference_mode) and a
training step (forward, then the gradients of the summed output with respect to the input,
h0 and every weight); ratios are torch's median time over grukit's. The outputs are checked
equal (1e-4) before timing.
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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
    # many rows through a large recurrent weight (session 20)
    (128, 512, 20, 128, 1, False),
    (64, 1024, 30, 64, 1, False),
    (256, 512, 10, 64, 1, True),
    # steps under 64K multiply-adds: the plain loop on the calling thread (session 21)
    (8, 24, 100, 64, 1, False),
    (4, 48, 100, 64, 1, False),
    (64, 16, 100, 64, 1, False),
    # a batch of 24-48 rows through a recurrent weight larger than L2: the backward's step
    # matmul (session 21)
    (32, 512, 50, 64, 1, False),
    (48, 1024, 20, 64, 1, False),
    # a few steps of a few rows through a weight too large to keep packed (session 20)
    (5, 1024, 5, 16, 1, False),
    (5, 1024, 10, 16, 1, False),
]
# gk.GRUCell against torch.nn.GRUCell, one step per call: (B, H, I) (session 19)
CELLS = [(1, 64, 64), (8, 24, 100), (24, 200, 13), (32, 256, 64), (64, 512, 128)]
# a decoder run step by step, as PyTorch's seq2seq tutorial does: (B, H, I), 20 steps (session 19)
DECODERS = [(8, 24, 100), (24, 200, 13), (32, 256, 64), (64, 512, 128)]
# float64 layers: (B, H, T, I, layers, bidirectional) (session 20)
FLOAT64 = [
    (64, 16, 100, 1, 1, False),
    (4, 256, 35, 1, 1, False),
    (256, 128, 10, 300, 1, False),
    (32, 256, 100, 64, 2, True),
]
# sequences of lengths drawn uniformly from 1..T (one of T): (B, H, T, I, layers, bidirectional) (session 20)
VARIABLE = [
    (2, 128, 5, 128, 1, False),
    (128, 32, 20, 128, 1, False),
    (16, 128, 200, 40, 1, False),
    (32, 256, 100, 512, 1, False),
    (32, 256, 100, 1, 2, True),
    (200, 256, 30, 100, 1, False),
    (64, 512, 100, 64, 1, False),
]


def _cell_step(cell: torch.nn.Module, x: torch.Tensor, h: torch.Tensor, train: bool):
    params = list(cell.parameters())

    def step():
        if not train:
            with torch.inference_mode():
                return cell(x, h)
        return torch.autograd.grad(cell(x, h).sum(), [x, h, *params])

    return step


def _decoder_step(gru_class, B: int, H: int, I: int, steps: int = 20):
    """One training step of a decoder run a step at a time: gru(Linear(x_t), h), then a Linear
    and a squared error per step, the gradients of every weight."""
    torch.manual_seed(0)
    gru, embed, out = gru_class(I, H), torch.nn.Linear(I, I), torch.nn.Linear(H, I)
    params = [*gru.parameters(), *embed.parameters(), *out.parameters()]
    x, y = torch.randn(steps, B, I), torch.randn(steps, B, I)

    def step():
        h, loss = torch.zeros(1, B, H), 0.0
        for t in range(steps):
            o, h = gru(embed(x[t:t + 1]), h)
            loss = loss + ((out(o) - y[t:t + 1]) ** 2).mean()
        return torch.autograd.grad(loss, params)

    return step


def _variable(gru, x, h0, lengths, kind: str, train: bool):
    """gru on sequences of these lengths: given a PackedSequence ("packed"), or the padded batch and
    lengths ("padded": gk.GRU's lengths=; torch.nn.GRU packs it and pads its output, as its users do)."""
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    params = list(gru.parameters())

    def call():
        if kind == "packed":
            out, h = gru(packed, h0)
            return out.data, h
        if isinstance(gru, gk.GRU):
            return gru(x, h0, lengths=lengths)
        out, h = gru(pack_padded_sequence(x, lengths, enforce_sorted=False), h0)
        return pad_packed_sequence(out)[0], h

    def step():
        if not train:
            with torch.inference_mode():
                return call()
        out, h = call()
        return torch.autograd.grad(out.sum() + h.sum(), params)

    return step


def _sizes(timer: Timer, sizes=SIZES, dtype=torch.float32) -> None:
    print("\n| B | H | T | I | layers | mode | torch.nn.GRU ms | gk.GRU ms | vs nn.GRU |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = []
    for B, H, T, I, layers, bi in sizes:
        torch.manual_seed(0)
        theirs = torch.nn.GRU(I, H, layers, bidirectional=bi, dtype=dtype)
        ours = gk.GRU(I, H, layers, bidirectional=bi, dtype=dtype)
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(T, B, I, dtype=dtype, requires_grad=True)
        h0 = torch.randn(layers * (2 if bi else 1), B, H, dtype=dtype, requires_grad=True)
        with torch.inference_mode():
            torch.testing.assert_close(ours(x, h0)[0], theirs(x, h0)[0], rtol=1e-4, atol=1e-4)
        for mode, make in (("infer", _infer), ("train", _train_step)):
            got = timer.interleaved({"torch": make(theirs, x, h0), "grukit": make(ours, x, h0)})
            ratio = got["torch"] / got["grukit"]
            worst.append(ratio)
            print(f"| {B} | {H} | {T} | {I} | {layers}{' bi' if bi else ''} | {mode} | "
                  f"{got['torch'] * 1e3:.2f} | {got['grukit'] * 1e3:.2f} | {ratio:.2f}x |", flush=True)
    print(f"\nlowest ratio {min(worst):.2f}x; rows below 1.0x: {sum(r < 1 for r in worst)} of {len(worst)}")


def _cells(timer: Timer) -> None:
    print("\ngk.GRUCell against torch.nn.GRUCell, one step per call:\n")
    print("| B | H | I | mode | torch.nn.GRUCell us | gk.GRUCell us | vs nn.GRUCell |")
    print("|---|---|---|---|---|---|---|")
    for B, H, I in CELLS:
        torch.manual_seed(0)
        theirs = torch.nn.GRUCell(I, H)
        ours = gk.GRUCell.from_torch(theirs)
        x, h = torch.randn(B, I, requires_grad=True), torch.randn(B, H, requires_grad=True)
        for mode in ("infer", "train"):
            got = timer.interleaved({"torch": _cell_step(theirs, x, h, mode == "train"),
                                     "grukit": _cell_step(ours, x, h, mode == "train")})
            print(f"| {B} | {H} | {I} | {mode} | {got['torch'] * 1e6:.1f} | {got['grukit'] * 1e6:.1f} | "
                  f"{got['torch'] / got['grukit']:.2f}x |", flush=True)


def _decoders(timer: Timer) -> None:
    print("\na decoder run step by step (20 calls of gru(Linear(x_t), h) with T=1, a Linear and a squared "
          "error each, one training step):\n")
    print("| B | H | I | torch.nn.GRU ms | gk.GRU ms | vs nn.GRU |")
    print("|---|---|---|---|---|---|")
    for B, H, I in DECODERS:
        got = timer.interleaved({"torch": _decoder_step(torch.nn.GRU, B, H, I),
                                 "grukit": _decoder_step(gk.GRU, B, H, I)})
        print(f"| {B} | {H} | {I} | {got['torch'] * 1e3:.2f} | {got['grukit'] * 1e3:.2f} | "
              f"{got['torch'] / got['grukit']:.2f}x |", flush=True)


def _lengths(timer: Timer) -> None:
    print("\nsequences of different lengths, drawn uniformly from 1..T (one of T): a PackedSequence given "
          "to both, or a padded batch (gk.GRU's lengths=; torch.nn.GRU packs it and pads its output):\n")
    print("| B | H | T | I | layers | input | mode | torch.nn.GRU ms | gk.GRU ms | vs nn.GRU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for B, H, T, I, layers, bi in VARIABLE:
        torch.manual_seed(0)
        theirs = torch.nn.GRU(I, H, layers, bidirectional=bi)
        ours = gk.GRU.from_torch(theirs)
        x, h0 = torch.randn(T, B, I), torch.randn(layers * (2 if bi else 1), B, H)
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        for kind, mode in (("packed", "infer"), ("packed", "train"), ("padded", "infer")):
            got = timer.interleaved({"torch": _variable(theirs, x, h0, lengths, kind, mode == "train"),
                                     "grukit": _variable(ours, x, h0, lengths, kind, mode == "train")})
            print(f"| {B} | {H} | {T} | {I} | {layers}{' bi' if bi else ''} | {kind} | {mode} | "
                  f"{got['torch'] * 1e3:.2f} | {got['grukit'] * 1e3:.2f} | "
                  f"{got['torch'] / got['grukit']:.2f}x |", flush=True)


def _float64(timer: Timer) -> None:
    print("\nfloat64 layers:")
    _sizes(timer, FLOAT64, torch.float64)


TABLES = {"sizes": _sizes, "cells": _cells, "decoders": _decoders, "lengths": _lengths, "float64": _float64}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=0.5)
    p.add_argument("--only", nargs="+", choices=sorted(TABLES), default=list(TABLES),
                   help="the tables to run (default: all, in this order: " + ", ".join(TABLES) + ")")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    timer = Timer(args.repeats, args.min_seconds)
    info = gk.engine_info()
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"grukit's engine variant {info['isa']}")
    for name in TABLES:
        if name in args.only:
            TABLES[name](timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
