"""grukit against its rivals on this machine: the grid of docs/benchmarking.md.

Every figure is a ratio measured side by side in this one process: the rival's
median time over grukit's median time, each after a warm-up, over at least
``repeats`` runs and ``min_seconds``. Peak GFLOP/s is a 2048x2048 float32 matmul
timed in the same run. Used by ``grukit bench`` and ``benchmarks/bench_cpu.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

import grukit as gk

GRID = [(1, 64), (32, 64), (32, 256), (128, 256), (32, 1024)]
T, I = 100, 64


@dataclass
class Timer:
    repeats: int = 10
    min_seconds: float = 1.0

    def __call__(self, fn: Callable[[], object]) -> float:
        """Median seconds of fn after a warm-up."""
        fn()
        fn()
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < self.repeats or time.perf_counter() - start < self.min_seconds:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def interleaved(self, fns: dict[str, Callable[[], object]]) -> dict[str, float]:
        """Median seconds of each fn, run in turns (one call of each per round), so
        that a slow spell of the machine falls on all of them alike."""
        for fn in fns.values():
            fn()
            fn()
        times: dict[str, list[float]] = {name: [] for name in fns}
        start = time.perf_counter()
        rounds = 0
        while rounds < self.repeats or time.perf_counter() - start < self.min_seconds * len(fns):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            rounds += 1
        return {name: statistics.median(ts) for name, ts in times.items()}


def peak_gflops(timer: Timer) -> float:
    a, out = torch.randn(2048, 2048), torch.empty(2048, 2048)
    return 2 * 2048**3 / timer(lambda: torch.mm(a, a, out=out)) / 1e9


def gru_flops(B: int, H: int, training: bool) -> float:
    """One forward: 2*3*H*(I+H)*B*T; a training step counts three times that."""
    return 2 * 3 * H * (I + H) * B * T * (3 if training else 1)


def _train_step(module: torch.nn.Module, x: torch.Tensor, h0: torch.Tensor) -> Callable[[], object]:
    params = list(module.parameters())

    def step():
        out, _ = module(x, h0)
        return torch.autograd.grad(out.sum(), [x, h0, *params])

    return step


def _infer(module: torch.nn.Module, x: torch.Tensor, h0: torch.Tensor) -> Callable[[], object]:
    def run():
        with torch.inference_mode():
            return module(x, h0)

    return run


def _onnx_session(gru: gk.GRU, B: int):
    """ONNX Runtime running the same weights, as gk.export writes them: one ONNX GRU node,
    inputs "input" (T, B, I) and "h0", outputs "output" and "h_n" (None if not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    model = gk.export.onnx_model(gru, h0=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _keras_layer(gru: gk.GRU):
    """A Keras 3 GRU (torch backend) with gru's weights (None if keras is missing)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None
    layer = keras.layers.GRU(gru.hidden_size, reset_after=gru.reset_after, return_sequences=True)
    layer.build((None, None, gru.input_size))
    layer.set_weights(gk.interop.to_keras(gru))
    return layer


def _keras_fns(layer, x_bf: torch.Tensor, h0: torch.Tensor):
    weights = [w.value for w in layer.weights]

    def train():
        out = layer(x_bf, initial_state=h0[0])
        return torch.autograd.grad(out.sum(), [x_bf, h0, *weights])

    def infer():
        with torch.no_grad():
            return layer(x_bf, initial_state=h0[0])

    return train, infer


def _check_rivals(ours, cho, x, h0, sess, keras_fns) -> None:
    """The rivals compute the same function as grukit, or their times mean nothing."""
    with torch.no_grad():
        want = ours(x, h0)[0]
        if sess is not None:
            got = torch.from_numpy(sess.run(None, {"input": x.numpy(), "h0": h0.numpy()})[0])
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg="ONNX Runtime differs")
        for name, (_, infer) in keras_fns.items():
            ref = want if name == "T" else cho(x, h0)[0]
            got = infer().transpose(0, 1)
            torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4, msg=f"Keras ra={name} differs")


def _ratio(rival: Optional[float], ours: float) -> str:
    return "-" if rival is None else f"{rival / ours:.2f}x"


def _ms(t: Optional[float]) -> str:
    return "-" if t is None else f"{t * 1e3:.3f}" if t < 0.01 else f"{t * 1e3:.2f}"


def run_grid(timer: Timer, rivals: set[str], grid=GRID, log=print) -> dict:
    """Times every grid row; returns the measurements and prints a markdown table."""
    peak = peak_gflops(timer)
    log(f"peak matmul 2048x2048: {peak:.1f} GFLOP/s on {torch.get_num_threads()} threads; "
        f"T={T}, I={I}, float32\n")
    log("| B | H | mode | grukit ms | % peak | nn.GRU ms | vs nn.GRU | ORT ms | vs ORT "
        "| Keras ms | vs Keras | grukit ra=F ms | F/T | Keras ra=F ms | vs Keras ra=F |")
    log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for B, H in grid:
        torch.manual_seed(0)
        ref = torch.nn.GRU(I, H)
        ours = gk.GRU.from_torch(ref, engine="auto")
        cho = gk.GRU(I, H, reset_after=False)
        cho.load_state_dict(ours.state_dict())
        x = torch.randn(T, B, I, requires_grad=True)
        h0 = torch.randn(1, B, H, requires_grad=True)
        sess = _onnx_session(ours, B) if "onnx" in rivals else None
        x_bf = x.detach().transpose(0, 1).contiguous().requires_grad_()  # Keras is batch-first
        keras_fns = {}
        for name, module in (("T", ours), ("F", cho)):
            layer = _keras_layer(module) if "keras" in rivals else None
            if layer is not None:
                keras_fns[name] = _keras_fns(layer, x_bf, h0)
        _check_rivals(ours, cho, x, h0, sess, keras_fns)
        for mode in ("train", "infer"):
            training = mode == "train"
            make = _train_step if training else _infer
            t_ours = timer(make(ours, x, h0))
            t_cho = timer(make(cho, x, h0))
            t_torch = timer(make(ref, x, h0))
            t_keras = {k: timer(fns[0] if training else fns[1]) for k, fns in keras_fns.items()}
            t_ort = None
            if sess is not None and not training:
                feed = {"input": x.detach().numpy(), "h0": h0.detach().numpy()}
                t_ort = timer(lambda sess=sess, feed=feed: sess.run(None, feed))
                time.sleep(0.2)  # ONNX Runtime's threads spin after a run: let them settle
            pct = 100 * gru_flops(B, H, training) / t_ours / 1e9 / peak
            row = dict(B=B, H=H, mode=mode, ours=t_ours, cho=t_cho, torch=t_torch, ort=t_ort,
                       keras=t_keras.get("T"), keras_cho=t_keras.get("F"), pct_peak=pct)
            rows.append(row)
            log(f"| {B} | {H} | {mode} | {_ms(t_ours)} | {pct:.0f}% | {_ms(t_torch)} | "
                f"{_ratio(t_torch, t_ours)} | {_ms(t_ort)} | {_ratio(t_ort, t_ours)} | "
                f"{_ms(row['keras'])} | {_ratio(row['keras'], t_ours)} | {_ms(t_cho)} | "
                f"{t_cho / t_ours:.2f} | {_ms(row['keras_cho'])} | {_ratio(row['keras_cho'], t_cho)} |")
    return {"peak_gflops": peak, "rows": rows}


def run_streaming(timer: Timer, rivals: set[str], H: int = 256, steps: int = 100, log=print) -> dict:
    """B=1, one time step per call, state carried: the per-step latency."""
    torch.manual_seed(0)
    ref = torch.nn.GRU(I, H)
    ours = gk.GRU.from_torch(ref)
    xs = torch.randn(steps, 1, 1, I)

    def loop(module):
        def run():
            h = torch.zeros(1, 1, H)
            with torch.inference_mode():
                for x in xs:
                    _, h = module(x, h)
            return h
        return run

    t_ours, t_torch = timer(loop(ours)) / steps, timer(loop(ref)) / steps
    t_ort = None
    sess = _onnx_session(ours, 1) if "onnx" in rivals else None
    if sess is not None:
        feeds = [x.numpy() for x in xs]

        def ort_loop():
            h = torch.zeros(1, 1, H).numpy()
            for x in feeds:
                _, h = sess.run(None, {"input": x, "h0": h})
        t_ort = timer(ort_loop) / steps
    log(f"\nstreaming B=1 H={H}, one step per call: grukit {t_ours * 1e6:.1f} us/step, "
        f"nn.GRU {t_torch * 1e6:.1f} us ({_ratio(t_torch, t_ours)}), "
        f"ORT {'-' if t_ort is None else f'{t_ort * 1e6:.1f} us'} ({_ratio(t_ort, t_ours)})")
    return {"ours": t_ours, "torch": t_torch, "ort": t_ort}


def summarize(grid: dict, log=print) -> dict:
    rows = grid["rows"]
    train = [r for r in rows if r["mode"] == "train"]
    infer = [r for r in rows if r["mode"] == "infer"]
    geo = math.exp(statistics.mean(math.log(r["torch"] / r["ours"]) for r in train))
    checks = {
        "training geomean vs nn.GRU >= 2.5x": (geo, geo >= 2.5),
        "no training row below 1.0x": (min(r["torch"] / r["ours"] for r in train),
                                       all(r["torch"] >= r["ours"] for r in train)),
    }
    for r in infer:
        need = 10.0 if r["B"] == 1 else 1.2
        checks[f"inference B={r['B']} H={r['H']} vs nn.GRU >= {need}x"] = (
            r["torch"] / r["ours"], r["torch"] / r["ours"] >= need)
        if r["B"] == 1 and r["ort"] is not None:
            checks["inference B=1 vs ONNX Runtime >= 1.0x"] = (r["ort"] / r["ours"], r["ort"] >= r["ours"])
    big = [r for r in train if (r["B"], r["H"]) == (32, 1024)]
    if big:
        checks["B=32 H=1024 training >= 60% of peak"] = (big[0]["pct_peak"], big[0]["pct_peak"] >= 60)
    worst = max(r["cho"] / r["ours"] for r in rows)
    checks["reset_after=False within 1.15x of True (worst row)"] = (worst, worst <= 1.15)
    log("\n| target | measured | met |\n|---|---|---|")
    for name, (value, ok) in checks.items():
        log(f"| {name} | {value:.2f} | {'yes' if ok else 'NO'} |")
    return checks


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="grukit bench", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (docs/benchmarking.md: 2)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--quick", action="store_true", help="3 repeats, 0.05 s: a smoke run, not a result")
    p.add_argument("--rivals", default="torch,onnx,keras",
                   help="comma list from torch,onnx,keras (nn.GRU always runs)")
    p.add_argument("--grid", default=None,
                   help="B,H pairs like 1x64,32x256 (default: docs/benchmarking.md's)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    timer = Timer(3, 0.05) if args.quick else Timer(args.repeats, args.min_seconds)
    rivals = set(args.rivals.split(","))
    grid = GRID if args.grid is None else [tuple(map(int, g.split("x"))) for g in args.grid.split(",")]
    info = gk.engine_info()
    print(f"grukit {gk.__version__}, torch {torch.__version__}, engine auto -> {info['auto']}")
    results = run_grid(timer, rivals, grid)
    run_streaming(timer, rivals)
    summarize(results)
    return 0
