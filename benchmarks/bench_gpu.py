"""grukit's GPU engines against torch.nn.GRU on cuDNN, on one CUDA GPU, in one run.

    python benchmarks/bench_gpu.py [--out results.md] [--quick]

First tests/test_gpu_engines.py on this GPU (every comparison of the Triton kernels
with the reference engine, compiled for the GPU instead of interpreted, and the
`cuda`-marked checks; on several processes when pytest-xdist is installed), then the
grid of issue 17's targets, each row timed side by side in this process (median of
repeated calls, CUDA-synchronised; training = forward + backward of the summed
output), written as a markdown table (stdout, and --out).
Meant to finish in under 5 minutes on an H100/H200; --quick times fewer repeats.
Ratios are rival time / grukit time: above 1 means grukit is faster.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import grukit as gk  # noqa: E402

ROWS: list[str] = []


def timed(fn, budget: float) -> float:
    """Median seconds per call of fn (CUDA-synchronised), over about ``budget`` seconds."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < budget and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def call(model, x, train: bool, **kw):
    def run():
        if train:
            out = model(x, **kw)[0]
            (out.data if hasattr(out, "batch_sizes") else out).float().sum().backward()
        else:
            with torch.no_grad():
                model(x, **kw)
    return run


def row(name: str, rival: str, t_rival: float, ours: dict[str, float]) -> None:
    cells = " | ".join(f"{k} {v * 1e3:.3f} ms ({t_rival / v:.2f}x)" for k, v in ours.items())
    ROWS.append(f"| {name} | {rival} {t_rival * 1e3:.3f} ms | {cells} |")
    print(ROWS[-1], flush=True)


def torch_gru(I, H, **kw):
    return torch.nn.GRU(I, H, **kw).cuda()


def ours(I, H, engine, **kw):
    return gk.GRU(I, H, engine=engine, **kw).cuda()


def plain_grid(budget: float) -> None:
    ROWS.append("\n### Plain GRU, T=100, I=H: torch.nn.GRU (cuDNN) vs gk.GRU\n")
    ROWS.append("| config | torch.nn.GRU | gk.GRU |")
    ROWS.append("|---|---|---|")
    for H in (256, 512, 1024):
        for B in (1, 8, 64, 256):
            x = torch.randn(100, B, H, device="cuda")
            t_ref = torch_gru(H, H)
            a, tr = ours(H, H, "auto"), ours(H, H, "triton")
            for train in (False, True):
                mode = "train" if train else "infer"
                row(f"B={B} H={H} {mode}", "cuDNN", timed(call(t_ref, x, train), budget),
                    {"auto": timed(call(a, x, train), budget), "triton": timed(call(tr, x, train), budget)})


def tf32_rows(budget: float) -> None:
    """Like for like at large batches: cuDNN runs its matmuls in TF32 by default
    (torch.backends.cudnn.allow_tf32), grukit's Triton engine follows
    torch.backends.cuda.matmul.allow_tf32 (False by default): here both use TF32."""
    ROWS.append("\n### B=256, T=100, I=H, TF32 on both sides "
                "(torch.backends.cuda.matmul.allow_tf32 = True)\n")
    ROWS.append("| config | torch.nn.GRU | gk.GRU |")
    ROWS.append("|---|---|---|")
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        for H in (256, 512, 1024):
            x = torch.randn(100, 256, H, device="cuda")
            t_ref, tr = torch_gru(H, H), ours(H, H, "triton")
            for train in (False, True):
                row(f"B=256 H={H} {'train' if train else 'infer'} TF32", "cuDNN",
                    timed(call(t_ref, x, train), budget), {"triton": timed(call(tr, x, train), budget)})
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def small_grid(budget: float) -> None:
    ROWS.append("\n### Small hidden sizes, T=100, I=H (H <= 32: the persistent kernel; above: the "
                "per-step loop as a CUDA graph)\n")
    ROWS.append("| config | torch.nn.GRU | gk.GRU |")
    ROWS.append("|---|---|---|")
    for H in (32, 64, 128):
        for B in (1, 8, 64):
            x = torch.randn(100, B, H, device="cuda")
            t_ref, tr = torch_gru(H, H), ours(H, H, "triton")
            for train in (False, True):
                row(f"B={B} H={H} {'train' if train else 'infer'}", "cuDNN",
                    timed(call(t_ref, x, train), budget), {"triton": timed(call(tr, x, train), budget)})


def lengths_row(budget: float) -> None:
    ROWS.append("\n### Variable lengths, B=64, H=512, T=200, lengths uniform in [20, 200], training\n")
    ROWS.append("| config | torch.nn.GRU on a PackedSequence | gk.GRU with lengths= |")
    ROWS.append("|---|---|---|")
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(20, 201, (64,), generator=g)
    x = torch.randn(200, 64, 512, device="cuda")
    t_ref = torch_gru(512, 512)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    a, tr = ours(512, 512, "auto"), ours(512, 512, "triton")
    row("B=64 H=512 T=200 train", "packed", timed(call(t_ref, packed, True), budget),
        {"auto": timed(call(a, x, True, lengths=lengths), budget),
         "triton": timed(call(tr, x, True, lengths=lengths), budget)})


def options_rows(budget: float) -> None:
    ROWS.append("\n### Options cuDNN lacks, B=64, H=512, T=100, training; rival: cuDNN's plain GRU\n")
    ROWS.append("| option | torch.nn.GRU (plain) | gk.GRU |")
    ROWS.append("|---|---|---|")
    x = torch.randn(100, 64, 512, device="cuda")
    t_plain = timed(call(torch_gru(512, 512), x, True), budget)
    options = (("reset_after=False", {"reset_after": False}), ("layer_norm", {"layer_norm": True}),
               ("zoneout=0.1", {"zoneout": 0.1}), ("recurrent_dropout=0.25", {"recurrent_dropout": 0.25}))
    for name, kw in options:
        tr = ours(512, 512, "triton", **kw).train()
        ref = ours(512, 512, "reference", **kw).train()
        row(name, "cuDNN plain", t_plain, {"triton": timed(call(tr, x, True), budget),
                                           "reference loop": timed(call(ref, x, True), min(budget, 1.0))})


def mingru_row(budget: float) -> None:
    ROWS.append("\n### MinGRU, B=32, H=256, T=4096, training\n")
    ROWS.append("| config | torch.nn.GRU | gk.MinGRU |")
    ROWS.append("|---|---|---|")
    from grukit.gpu import scan

    x = torch.randn(4096, 32, 256, device="cuda")
    m = gk.MinGRU(256, 256).cuda()
    t_gru = timed(call(torch_gru(256, 256), x, True), budget)
    found = {}
    for name, force in (("chunked scan (default)", None), ("one pass over time", 4096)):
        scan.FORCE_CHUNK = force
        try:
            found[name] = timed(call(m, x, True), budget)
        finally:
            scan.FORCE_CHUNK = None
    row("B=32 H=256 T=4096 train", "cuDNN GRU", t_gru, found)
    assert m.last_engine == "triton", m.last_engine
    # the scan alone, forward + backward (the rest is the projection's GEMMs)
    g = torch.randn(4096, 32, 512, device="cuda", requires_grad=True)
    h0 = torch.zeros(32, 256, device="cuda")

    def scan_call():
        scan.mingru_scan(g, h0).sum().backward()
    alone = {}
    for name, force in (("chunked", None), ("one pass", 4096)):
        scan.FORCE_CHUNK = force
        try:
            alone[name] = timed(scan_call, budget)
        finally:
            scan.FORCE_CHUNK = None
    ROWS.append(f"| the scan alone, forward + backward | | chunked {alone['chunked'] * 1e3:.3f} ms, "
                f"one pass {alone['one pass'] * 1e3:.3f} ms |")


def bf16_row(budget: float) -> None:
    ROWS.append("\n### bfloat16 autocast, B=256, H=1024, T=100, training "
                "(rival: the same engine in float32)\n")
    ROWS.append("| engine | float32 | bfloat16 autocast |")
    ROWS.append("|---|---|---|")
    x = torch.randn(100, 256, 1024, device="cuda")
    for engine, kw in (("cudnn", {}), ("triton", {}), ("triton layer_norm", {"layer_norm": True})):
        m = ours(1024, 1024, engine.split()[0], **kw)

        def bf16(m=m):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                call(m, x, True)()
        row(engine, "float32", timed(call(m, x, True), budget), {"bf16": timed(bf16, budget)})


def bf16_curves(budget: float, epochs: int = 20, device: str = "cuda") -> None:
    """bfloat16 autocast on a real task: the shipped weekly CO2 series (standardised), the
    next week from the 52 before, a 2-layer GRU(256) + Linear trained with Adam from the
    same initial weights in float32 and under bfloat16 autocast; the training loss per
    epoch and the held-out loss (the last 20% of windows) of each."""
    del budget
    import numpy as np
    csv = os.path.join(os.path.dirname(HERE), "grukit", "datasets", "co2_weekly.csv")
    series = np.genfromtxt(csv, delimiter=",", skip_header=1, usecols=1)  # missing weeks: NaN
    gaps = np.isnan(series)
    series[gaps] = np.interp(np.flatnonzero(gaps), np.flatnonzero(~gaps), series[~gaps])
    series = ((series - series.mean()) / series.std()).astype(np.float32)
    W = 52
    X = np.stack([series[i:i + W] for i in range(len(series) - W)])[..., None]
    Y = series[W:, None]
    cut = int(0.8 * len(X))
    xs, ys = torch.from_numpy(X).to(device), torch.from_numpy(Y).to(device)
    ROWS.append(f"\n### bfloat16 autocast on a real task: weekly CO2, next week from 52, {len(X)} windows, "
                f"GRU(256) x 2 + Linear, Adam 2e-3, batch 128, {epochs} epochs\n")
    ROWS.append("| engine | precision | train loss, epochs 1 / 5 / 10 / last | held-out MSE | s |")
    ROWS.append("|---|---|---|---|---|")
    for engine in ("cudnn", "triton"):
        torch.manual_seed(0)
        start_gru = gk.GRU(1, 256, num_layers=2, batch_first=True, engine=engine).to(device)
        start_head = torch.nn.Linear(256, 1).to(device)
        for precision in ("float32", "bfloat16"):
            gru, head = copy.deepcopy(start_gru), copy.deepcopy(start_head)

            def amp(precision=precision):
                return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bfloat16")
            params = list(gru.parameters()) + list(head.parameters())
            opt = torch.optim.Adam(params, lr=2e-3)
            g = torch.Generator().manual_seed(1)
            curve, t0 = [], time.perf_counter()
            for _ in range(epochs):
                order, total = torch.randperm(cut, generator=g), 0.0
                for i in range(0, cut, 128):
                    idx = order[i:i + 128].to(device)
                    with amp():
                        out, _ = gru(xs[idx])
                        pred = head(out[:, -1])
                    loss = torch.nn.functional.mse_loss(pred.float(), ys[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                curve.append(total / cut)
            with torch.no_grad(), amp():
                held = float(torch.nn.functional.mse_loss(head(gru(xs[cut:])[0][:, -1]).float(), ys[cut:]))
            marks = " / ".join(f"{curve[k]:.4f}" for k in (0, 4, 9, epochs - 1) if k < epochs)
            ROWS.append(f"| {engine} | {precision} | {marks} | {held:.4f} | {time.perf_counter() - t0:.1f} |")
            print(ROWS[-1], flush=True)


def modes_rows(budget: float) -> None:
    """Where the time goes: the persistent kernel against the per-step loop at H=64, and
    the per-step loop's floor (its T cuBLAS calls alone)."""
    ROWS.append("\n### Diagnostics: the Triton engine's two modes, T=100, I=H\n")
    ROWS.append("| config | torch.nn.GRU | gk.GRU triton |")
    ROWS.append("|---|---|---|")
    from grukit.gpu import recurrence
    for H, B in ((32, 8), (64, 8), (64, 64)):
        x = torch.randn(100, B, H, device="cuda")
        t_ref, tr = torch_gru(H, H), ours(H, H, "triton")
        for train in (False, True):
            got = {}
            for mode in ("persistent", "step"):
                recurrence.MODE = mode
                try:
                    got[mode] = timed(call(tr, x, train), budget)
                finally:
                    recurrence.MODE = None
            name = f"B={B} H={H} {'train' if train else 'infer'}"
            row(name, "cuDNN", timed(call(t_ref, x, train), budget), got)
    h, w = torch.randn(8, 256, device="cuda"), torch.randn(768, 256, device="cuda")

    def mm_loop():
        for _ in range(100):
            torch.mm(h, w.t())
    ROWS.append(f"- floor of the per-step loop at B=8, H=256: 100 torch.mm calls take "
                f"{timed(mm_loop, budget) * 1e3:.3f} ms")
    print(ROWS[-1], flush=True)


def profile_rows(budget: float) -> None:
    """How much of a call the GPU is busy (torch.profiler): where the rest is host time."""
    ROWS.append("\n### Diagnostics: GPU busy time per call (torch.profiler), T=100, I=H\n")
    for H, B, train in ((32, 8, False), (256, 8, False), (256, 64, False), (512, 64, True)):
        x = torch.randn(100, B, H, device="cuda")
        for name, model in (("cuDNN", torch_gru(H, H)), ("triton", ours(H, H, "triton"))):
            fn = call(model, x, train)
            wall = timed(fn, budget)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    fn()
                torch.cuda.synchronize()
            events = prof.key_averages()
            ms = lambda e: getattr(e, "self_device_time_total", 0) / 5 / 1e3  # noqa: E731
            busy = sum(ms(e) for e in events)
            tops = ", ".join(f"{e.key[:40]} {ms(e):.3f}" for e in sorted(events, key=ms)[::-1][:3])
            ROWS.append(f"- B={B} H={H} {'train' if train else 'infer'} {name}: wall {wall * 1e3:.3f} ms, "
                        f"GPU busy {busy:.3f} ms (top: {tops})")
            print(ROWS[-1], flush=True)


def compile_check() -> None:
    ROWS.append("\n### torch.compile(fullgraph=True) and torch.export on CUDA\n")
    for engine, kw in (("cudnn", {}), ("triton", {"layer_norm": True})):
        m = ours(64, 64, engine, **kw)
        x = torch.randn(20, 8, 64, device="cuda")
        try:
            want = m(x)[0]
            got = torch.compile(m, fullgraph=True)(x)[0]
            err = (got - want).abs().max().item()
            exported = torch.export.export(m.eval(), (x,))
            err_e = (exported.module()(x)[0] - want).abs().max().item()
            ROWS.append(f"- {engine}: compiled max error {err:.2e}, exported max error {err_e:.2e}")
        except Exception as exc:  # reported, not hidden
            ROWS.append(f"- {engine}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
        print(ROWS[-1], flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--tests-timeout", type=float, default=240, help="seconds for the tests")
    parser.add_argument("--only", help="comma-separated parts to run (e.g. bf16_curves); default: all")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py needs a CUDA GPU; torch sees none here", file=sys.stderr)
        return 2
    budget = 0.15 if args.quick else 0.4
    device = torch.cuda.get_device_name(0)
    info = gk.engine_info()
    head = [f"## GPU: {device}, torch {torch.__version__}, {info['engines']['triton']['runs']}",
            f"date {time.strftime('%Y-%m-%d')}, command: python benchmarks/bench_gpu.py"]
    print("\n".join(head), flush=True)
    start = time.perf_counter()
    if not args.skip_tests:
        try:
            import xdist  # noqa: F401
            workers = ["-n", "8"]
        except ImportError:
            workers = []
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers,
                              os.path.join(os.path.dirname(HERE), "tests", "test_gpu_engines.py")],
                             capture_output=True, text=True, timeout=args.tests_timeout)
        tail = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-500:]
        head.append(f"cuda tests: {tail} (rc {res.returncode})")
        print(res.stdout[-3000:], res.stderr[-2000:], flush=True)
    torch.backends.cudnn.benchmark = False
    parts = (plain_grid, tf32_rows, small_grid, modes_rows, profile_rows, lengths_row, options_rows,
             mingru_row, bf16_row, bf16_curves)
    if args.only:
        parts = tuple(p for p in parts if p.__name__ in args.only.split(","))
    for part in parts:
        try:
            part(budget)
        except Exception as exc:  # one failing part must not hide the others
            ROWS.append(f"- {part.__name__}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
            print(ROWS[-1], flush=True)
    if not args.only:
        compile_check()
    text = "\n".join(head + ROWS + [f"\n(total {time.perf_counter() - start:.0f} s)"])
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
