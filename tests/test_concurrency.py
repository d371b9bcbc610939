"""Servers' concurrency: processes that fork after the parent ran a model (gunicorn
--preload, Celery prefork, multiprocessing pools), spawned processes and DataLoader workers
get a working engine, and threads predicting at once get the serial answers."""

import multiprocessing as mp
import os
import signal

import pytest
import torch

import grukit as gk

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")


def _model():
    torch.manual_seed(0)
    return gk.GRU(16, 64, num_layers=2).eval()


@needs_fork
def test_a_hundred_forked_children_compute_what_the_parent_does():
    gru, x = _model(), torch.randn(50, 8, 16)
    with torch.no_grad():
        want = gru(x)[0]  # the parent runs the engine's parallel loops first
    assert torch.get_num_threads() > 1 or os.cpu_count() == 1
    for _ in range(100):
        pid = os.fork()
        if pid == 0:  # the child: a hang is killed by the alarm, a wrong answer exits 3
            signal.alarm(20)
            with torch.no_grad():
                got = gru(x)[0]
            os._exit(0 if torch.equal(got, want) else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0  # -14: hung (SIGALRM); 3: differs


def _spawned(queue):
    gru = _model()
    with torch.no_grad():
        queue.put(gru(torch.ones(5, 2, 16))[0].sum().item())


def test_a_spawned_process_computes_what_this_one_does():
    with torch.no_grad():
        want = _model()(torch.ones(5, 2, 16))[0].sum().item()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_spawned, args=(queue,))
    proc.start()
    got = queue.get(timeout=120)
    proc.join(timeout=60)
    assert proc.exitcode == 0 and got == pytest.approx(want, rel=1e-6)


class _Encoded(torch.utils.data.Dataset):
    """Each item runs the GRU inside a DataLoader worker process."""

    def __init__(self):
        self.gru = _model()

    def __len__(self):
        return 6

    def __getitem__(self, i):
        with torch.no_grad():
            return self.gru(torch.full((5, 1, 16), float(i)))[1][-1, 0]


@needs_fork
def test_dataloader_workers_run_the_engine():
    data = _Encoded()
    with torch.no_grad():
        data.gru(torch.randn(50, 8, 16))  # the parent ran the engine before the workers fork
    serial = torch.stack([data[i] for i in range(len(data))])
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=2,
                                         multiprocessing_context="fork", timeout=60)
    got = torch.cat(list(loader))
    torch.testing.assert_close(got, serial)


def test_predict_from_eight_threads_equals_the_serial_outputs():
    import threading

    import numpy as np

    from grukit import layers as L

    torch.manual_seed(0)
    model = gk.Sequential([L.Input((30, 8)), L.GRU(32, return_sequences=True), L.GRU(16), L.Dense(3)])
    xs = [np.random.default_rng(i).normal(size=(17, 30, 8)).astype("float32") for i in range(8)]
    serial = [model.predict(x) for x in xs]
    got = [[] for _ in xs]

    def run(i):
        for _ in range(10):
            got[i].append(model.predict(xs[i]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(len(g) == 10 and all(np.array_equal(a, serial[i]) for a in g) for i, g in enumerate(got))
