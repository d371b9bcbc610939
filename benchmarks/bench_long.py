"""Very long sequences: time and peak memory of one training step at T = 1e3, 1e4, 1e5.

    python benchmarks/bench_long.py [--batch 1] [--hidden 64] [--threads 2]

gk.GRU (fused CPU engine, float32, I=H), forward over the whole sequence and the
backward of output.sum() w.r.t. input, h0 and every weight, and an inference pass
(torch.inference_mode) at each length. Each length runs in a fresh process, so that
the peak resident memory (ru_maxrss) belongs to that length alone; the table gives
the peak minus the process's size before the first call, and that per step of T.
"""

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
import torch, grukit as gk
T, B, H, threads = map(int, sys.argv[1:5])
torch.set_num_threads(threads)
torch.manual_seed(0)
gru = gk.GRU(H, H)
x = torch.randn(T, B, H, requires_grad=True)
h0 = torch.zeros(1, B, H, requires_grad=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
t0 = time.perf_counter()
with torch.inference_mode():
    y_inf, _ = gru(x.detach(), h0.detach())
infer = time.perf_counter() - t0
del y_inf
t0 = time.perf_counter()
y, h_n = gru(x, h0)
(y.sum() + h_n.sum()).backward()
train = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
finite = bool(torch.isfinite(y).all() and torch.isfinite(x.grad).all()
              and all(torch.isfinite(p.grad).all() for p in gru.parameters()))
print(json.dumps({"T": T, "infer_s": infer, "train_s": train, "peak_mib": (peak - base) / 1024,
                  "finite": finite, "y_last_abs_mean": float(y[-1].abs().mean())}))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lengths", default="1000,10000,100000")
    args = p.parse_args(argv)
    rows = []
    print(f"B={args.batch}, I=H={args.hidden}, float32, {args.threads} threads, fused CPU engine")
    print(f"{'T':>8}{'inference s':>13}{'train step s':>14}{'us/step':>9}{'peak MiB':>10}{'KiB/step':>10}"
          f"{'finite':>8}")
    for T in map(int, args.lengths.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD, str(T), str(args.batch), str(args.hidden),
                              str(args.threads)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{T:>8}{r['infer_s']:>13.4f}{r['train_s']:>14.4f}{r['train_s'] / T * 1e6:>9.1f}"
              f"{r['peak_mib']:>10.1f}{r['peak_mib'] * 1024 / T:>10.2f}{str(r['finite']):>8}")
    return rows


if __name__ == "__main__":
    main()
