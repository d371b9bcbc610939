"""The forecast job's pretrained forecaster (grukit/app/pretrained.py): the shipped weights,
the season taken out and put back, what it reads, and that it forecasts what it should."""

import os
import sys

import numpy as np
import pytest
import torch

from grukit.app import pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_shipped_weights_load_into_the_networks():
    nets = pretrained.load()
    assert len(nets) == 2  # two seeds, averaged
    for net in nets:
        assert net.head.out_features == pretrained.STEPS
        assert all(torch.isfinite(p).all() for p in net.parameters())
    assert not torch.equal(nets[0].head.weight, nets[1].head.weight)
    assert pretrained.load() is nets  # read once


def test_inputs_are_the_history_relative_to_its_last_value_over_its_mean_change():
    history = np.array([1.0, 3.0, 2.0, 6.0])  # changes 2, 1, 4: mean 7/3
    x, last, change = pretrained.inputs(history)
    assert last == 6.0 and change == pytest.approx(7 / 3)
    assert x.shape == (pretrained.LONGEST, 2)
    np.testing.assert_allclose(x[-4:, 0], (history - 6.0) / (7 / 3), rtol=1e-6)
    np.testing.assert_array_equal(x[-4:, 1], 1.0)
    np.testing.assert_array_equal(x[:-4], 0.0)  # padded in front
    long = np.arange(500.0)
    x, last, change = pretrained.inputs(long)  # only the last LONGEST values are read
    assert last == 499.0 and change == 1.0 and x[0, 0] == -(pretrained.LONGEST - 1) and x[:, 1].all()


def test_seasonal_indices_of_a_season_on_a_trend_are_the_season():
    season = np.array([3.0, -1.0, 0.5, -2.5])  # sums to 0
    t = np.arange(40)
    v = 10 + 0.3 * t + season[t % 4]
    np.testing.assert_allclose(pretrained.seasonal_indices(v, 4, 0), season, atol=1e-12)
    # the phase counts from index 0 of v, wherever the stretch read starts
    np.testing.assert_allclose(pretrained.seasonal_indices(v, 4, 13), season, atol=1e-12)
    odd = np.array([1.0, -2.0, 1.0])
    np.testing.assert_allclose(pretrained.seasonal_indices(5 + odd[np.arange(30) % 3], 3, 0), odd, atol=1e-12)
    assert not pretrained.seasonal_indices(v, 4, 36).any()  # under two seasons: none


def test_the_seasonality_test():
    rng = np.random.default_rng(0)
    t = np.arange(120)
    assert pretrained.is_seasonal(np.sin(2 * np.pi * t / 12) + 0.3 * rng.normal(size=120), 12)
    assert not pretrained.is_seasonal(rng.normal(size=120), 12)
    assert not pretrained.is_seasonal(np.sin(2 * np.pi * t[:30] / 12), 12)  # under three seasons
    assert not pretrained.is_seasonal(np.ones(60), 4) and not pretrained.is_seasonal(t * 1.0, 1)
    assert pretrained.seasonal_columns(np.c_[np.sin(2 * np.pi * t / 12) + 2, rng.uniform(1, 2, 120)], 12,
                                       True) == [True, False]


def test_forecasts_read_only_the_past_of_each_origin():
    rng = np.random.default_rng(1)
    v = (50 + np.cumsum(rng.normal(size=150)) + 3 * np.sin(2 * np.pi * np.arange(150) / 12))[:, None]
    origins = np.array([60, 90, 120])
    got = pretrained.forecasts(v, origins, 6, 12, False, [True])
    assert got.shape == (3, 6, 1) and np.isfinite(got).all()
    for i, o in enumerate(origins):
        changed = v.copy()
        changed[o + 1:] = rng.normal(size=(len(v) - o - 1, 1)) * 100
        np.testing.assert_array_equal(pretrained.forecasts(changed, origins, 6, 12, False, [True])[i], got[i])


def test_forecasts_move_with_the_series_units():
    """Its input is relative and scaled: a series shifted and stretched gets its forecasts
    shifted and stretched alike; a positive series is forecast on its logarithm."""
    rng = np.random.default_rng(2)
    v = (np.cumsum(rng.normal(size=80)) + 0.2 * np.arange(80))[:, None]
    origins = np.array([40, 79])
    base = pretrained.forecasts(v, origins, 5, 1, False, [False])
    np.testing.assert_allclose(pretrained.forecasts(7 + 3 * v, origins, 5, 1, False, [False]), 7 + 3 * base,
                               rtol=1e-5, atol=1e-4)
    positive = np.exp(v / 10)
    np.testing.assert_allclose(pretrained.forecasts(positive, origins, 5, 1, True, [False]),
                               np.exp(pretrained.forecasts(v / 10, origins, 5, 1, False, [False])), rtol=1e-6)


def test_a_straight_line_is_continued_and_a_flat_series_stays_flat():
    line = (5 + 2.0 * np.arange(60))[:, None]
    got = pretrained.forecasts(line, [59], 14, 1, False, [False])[0, :, 0]
    truth = 5 + 2.0 * np.arange(60, 74)
    assert np.abs(got - truth).max() < 0.1 * 2 * 14  # within a tenth of the rise over 14 steps
    assert (np.diff(got) > 0).all()
    rng = np.random.default_rng(3)
    noise = (100 + rng.normal(size=200))[:, None]  # white noise: forecasts near the mean
    got = pretrained.forecasts(noise, [199], 6, 1, False, [False])[0, :, 0]
    assert np.abs(got - 100).max() < 1.0


def test_past_its_steps_it_forecasts_on_from_its_own_forecasts():
    rng = np.random.default_rng(4)
    v = (20 + np.cumsum(rng.normal(size=100)))[:, None]
    long = pretrained.forecasts(v, [99], 20, 1, False, [False])
    first = pretrained.forecasts(v, [99], 14, 1, False, [False])
    np.testing.assert_allclose(long[:, :14], first)
    np.testing.assert_allclose(long[0, 14:], pretrained.forecasts(np.r_[v, first[0]], [113], 6, 1, False,
                                                                  [False])[0])
    with pytest.raises(ValueError, match="steps must be a positive int"):
        pretrained.forecasts(v, [99], 0, 1, False, [False])


def test_the_pretraining_script_trains_networks_the_job_can_load(tmp_path, monkeypatch):
    """tools/pretrain_forecaster.py, a few steps: it writes weights that load and forecast."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import pretrain_forecaster
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(0)
    s = pretrain_forecaster.series(rng, 100)
    assert s.shape == (100,) and np.isfinite(s).all()
    x, y, mask = pretrain_forecaster.examples(rng, [s, pretrain_forecaster.series(rng, 60)], 5)
    assert x.shape == (5, pretrained.LONGEST, 2) and y.shape == mask.shape == (5, pretrained.STEPS)
    assert bool(mask.all())
    out = tmp_path / "w.safetensors"
    assert pretrain_forecaster.main(["--steps", "3", "--batch", "8", "--units", "8", "--series", "20",
                                     "--members", "2", "--out", str(out)]) == 0
    monkeypatch.setattr(pretrained, "WEIGHTS", str(out))
    pretrained.load.cache_clear()
    try:
        nets = pretrained.load()
        assert len(nets) == 2 and all(net.head.in_features == 8 for net in nets)
        # the forecasts are the average of the networks' own
        v = np.cumsum(np.random.default_rng(5).normal(size=50))[:, None]
        x, last, change = pretrained.inputs(v[:, 0])
        with torch.no_grad():
            own = [net(torch.from_numpy(x[None]))[0, :4].numpy() for net in nets]
        np.testing.assert_allclose(pretrained.forecasts(v, [49], 4, 1, False, [False])[0, :, 0],
                                   last + change * (own[0] + own[1]) / 2, rtol=1e-5)
    finally:
        pretrained.load.cache_clear()  # the shipped weights for the tests after this one


def _pretrain_tool():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import pretrain_forecaster
    finally:
        sys.path.pop(0)
    return pretrain_forecaster


def test_real_examples_read_a_series_as_the_job_does():
    """tools/pretrain_forecaster.py's examples from real series: the input is pretrained.inputs of
    the history (in logs for a positive series, the season taken out as forecasts() does) and the
    targets past the series' end are masked."""
    tool = _pretrain_tool()
    v = np.array([3.0, 5, 4, 6, 8, 7, 9, 12, 11])  # one origin with a future: o = 7
    (pool_item,) = tool.real_pool([("tiny", v, 1)])
    assert not pool_item[2]
    np.testing.assert_allclose(pool_item[0], np.log(v))
    x, y, mask = tool.real_examples(np.random.default_rng(0), [pool_item], 3)
    want_x, last, change = pretrained.inputs(np.log(v[:8]))
    for i in range(3):
        np.testing.assert_allclose(x[i].numpy(), want_x)
        assert mask[i].tolist() == [1.0] + [0.0] * (pretrained.STEPS - 1)
        assert y[i, 0].item() == pytest.approx((np.log(11) - last) / change, rel=1e-6)
        assert not y[i, 1:].any()
    # a trend plus a fixed season of 4: with the season taken out, the history is a straight line
    t = np.arange(60.0)
    seasonal = 0.5 * t + np.tile([4.0, -1.0, -5.0, 2.0], 15)
    (item,) = tool.real_pool([("seasonal", seasonal, 4)])
    assert item[2]
    x, y, mask = tool.real_examples(np.random.default_rng(1), [item], 8)
    for i in range(8):
        real = x[i, :, 1].numpy() > 0
        steps = np.diff(x[i, real, 0].numpy())
        np.testing.assert_allclose(steps, steps[0], atol=1e-4)  # evenly spaced: no season left
        n = int(mask[i].sum().item())
        np.testing.assert_allclose(y[i, :n].numpy(), np.arange(1, n + 1), atol=1e-4)  # the line goes on


def test_kernelsynth_and_mixup_series():
    """tools/pretrain_forecaster.py --kernelsynth / --mixup (measured, not used for the shipped file):
    GP samples in the network's units (ending at 0, changes of unit mean size), a periodic kernel's
    sample repeats itself, a mixture of series is their weighted sum in those units, cut to the
    shortest, and shares that do not fit are refused."""
    tool = _pretrain_tool()
    rng = np.random.default_rng(3)
    for n in (40, 150, 319):
        s = tool.kernel_series(rng, n)
        assert s.shape == (n,) and np.isfinite(s).all()
        assert np.abs(np.diff(s)).mean() == pytest.approx(1.0, rel=1e-6) and s[-1] == 0.0
    t = np.linspace(0.0, 1.0, 120)

    class Periodic:  # a generator whose choices pick the periodic kernel of 12 steps, alone
        def choice(self, options):
            return {"linear": "periodic", 4: 12, 0.5: 1.0}.get(options[0], options[0])

        def integers(self, low, high):
            return 0

        def standard_normal(self, n):
            return np.random.default_rng(0).standard_normal(n)

    k = tool._kernel(Periodic(), t)
    np.testing.assert_allclose(k[0, 12], 1.0, rtol=1e-9)  # a whole period apart: fully correlated
    assert k[0, 6] < 0.2
    s = tool.kernel_series(Periodic(), 120)
    # (the kernel is singular: its sample repeats up to the jitter added to its diagonal)
    np.testing.assert_allclose(s[12:], s[:-12], atol=0.01 * np.abs(s).max())
    assert np.abs(s[6:] - s[:-6]).max() > 0.2 * np.abs(s).max()  # half a period apart: not the same
    a, b = np.arange(10.0) * 2, np.cos(np.arange(7.0))

    class Fixed:
        def __init__(self):
            self.picks = iter([0, 1])

        def integers(self, low, high=None):
            return 2 if high == 4 else next(self.picks)

        def dirichlet(self, alpha):
            return np.array([0.25, 0.75])

    mixed = tool.mixup(Fixed(), [a, b])
    want = 0.25 * (a[-7:] - a[-1]) / 2.0 + 0.75 * (b - b[-1]) / np.abs(np.diff(b)).mean()
    np.testing.assert_allclose(mixed, want, rtol=1e-12, atol=1e-12)
    for bad in (["--mixup", "1.5"], ["--kernelsynth", "-0.1"], ["--kernelsynth", "0.6", "--mixup", "0.5"]):
        with pytest.raises(SystemExit):
            tool.main([*bad, "--steps", "1"])
