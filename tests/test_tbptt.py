"""fit(..., tbptt=k): truncated backpropagation through time over long streams, with the
state carried by stateful GRU layers from one window to the next."""

import copy

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import layers as L


def _stream(T=60, B=4, delay=3, seed=0):
    x = np.random.default_rng(seed).normal(size=(B, T, 1)).astype("float32")
    y = np.zeros_like(x)
    y[:, delay:] = x[:, :-delay]  # recall the input of `delay` steps ago
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return gk.Sequential([L.Input((None, 1)), L.GRU(8, return_sequences=True, stateful=True), L.Dense(1)])


def test_fit_equals_the_hand_written_truncated_loop():
    x, y = _stream()
    ours = _model()
    ours.compile("sgd", "mse", learning_rate=0.1)
    ours.fit(x, y, epochs=1, batch_size=4, shuffle=False, tbptt=7, verbose=0)

    ref = _model()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ref.train()
    ref.reset_states()
    for t in range(0, x.shape[1], 7):  # windows of 7 steps; the last one is shorter
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(ref(xt[:, t:t + 7]), yt[:, t:t + 7])
        loss.backward()  # the carried state is detached: the gradient stops at the window's edge
        opt.step()
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_the_carried_state_answers_across_window_edges():
    """Windows of 10 steps, a delay of 3: at the first 3 steps of every window the
    answer lies in the previous window, reachable only through the carried state."""
    x, y = _stream(T=300, B=8, delay=3, seed=1)
    model = _model(1)
    model.compile("adam", "mse", learning_rate=0.01)
    history = model.fit(x, y, epochs=30, batch_size=8, shuffle=False, tbptt=10, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    forgetful = copy.deepcopy(model)
    forgetful.layers[1].stateful = False  # the same weights, no carried state
    x_test, y_test = _stream(T=300, B=8, delay=3, seed=2)
    model.reset_states()
    forgetful.reset_states()
    carried = np.concatenate([model.predict(x_test[:, t:t + 10], batch_size=8) for t in range(0, 300, 10)], 1)
    cut = np.concatenate([forgetful.predict(x_test[:, t:t + 10], batch_size=8) for t in range(0, 300, 10)], 1)
    edges = np.zeros(300, bool)
    edges[[t + k for t in range(10, 300, 10) for k in range(3)]] = True

    def mse(pred):
        return float(((pred - y_test)[:, edges] ** 2).mean())

    assert mse(carried) < 0.3 * mse(cut), (mse(carried), mse(cut))


def test_bad_tbptt_settings_are_named():
    x, y = _stream()
    model = _model()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="tbptt must be"):
        model.fit(x, y, tbptt=0, verbose=0)
    with pytest.raises(ValueError, match="per-step targets"):
        model.fit(x, y[:, -1], tbptt=5, verbose=0)
    plain = gk.Sequential([L.Input((None, 1)), L.GRU(4, return_sequences=True), L.Dense(1)])
    plain.compile("sgd", "mse")
    with pytest.raises(ValueError, match="stateful"):
        plain.fit(x, y, tbptt=5, verbose=0)
