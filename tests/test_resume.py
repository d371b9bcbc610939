"""ModelCheckpoint keeps the training state; fit(..., resume=path) goes on from it. A run
killed with SIGKILL mid-epoch and resumed ends with the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import grukit as gk
from grukit import callbacks as C
from grukit import layers as L

TRAIN = """
import hashlib, sys, time
import numpy as np, torch, grukit as gk
from grukit import layers as L, callbacks as C
torch.set_num_threads(2)
path, epochs, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
resume = sys.argv[4] if len(sys.argv) > 4 else None
gk.set_seed(5)
x = np.random.normal(size=(128, 10, 3)).astype("float32")
y = (x[:, :, 0].sum(1, keepdims=True) > 0).astype("float32")
model = gk.Sequential([L.Input((None, 3)), L.GRU(16, recurrent_dropout=0.2), L.Dropout(0.2),
                       L.Dense(1, activation="sigmoid")])
model.compile("adam", "binary_crossentropy")

class Pause(C.Callback):  # slow enough to be killed in the middle of an epoch
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(pause)

step_lr = C.LearningRateScheduler(torch_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2, 0.7))
callbacks = [C.ModelCheckpoint(path, monitor="loss"), C.ReduceLROnPlateau(monitor="loss", patience=0,
             factor=0.5), step_lr, Pause()]
history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks, resume=resume)
digest = hashlib.sha256()
for p in model.parameters():
    digest.update(p.detach().numpy().tobytes())
print(digest.hexdigest(), len(history.history["loss"]), model.optimizer.param_groups[0]["lr"])
"""


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-c", TRAIN, *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


@pytest.mark.slow
def test_killed_mid_epoch_and_resumed_equals_uninterrupted(tmp_path):
    full = _run(tmp_path / "full.grukit", 5, 0)
    assert full.returncode == 0, full.stderr[-2000:]
    path = tmp_path / "ck.grukit"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(path), "5", "0.03"])
    try:
        deadline = time.time() + 120
        while not path.exists() and time.time() < deadline:
            time.sleep(0.02)
        first = path.stat().st_mtime_ns
        while path.stat().st_mtime_ns == first and time.time() < deadline:  # the 2nd epoch is saved
            time.sleep(0.02)
        time.sleep(0.1)  # a few batches into the 3rd epoch
        assert proc.poll() is None, "training finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    saved = gk.load(path)  # the checkpoint is a whole model file after the kill
    assert saved.layers[1].units == 16
    resumed = _run(path, 5, 0, path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.split() == full.stdout.split()  # weights' digest, 5 epochs of history, lr


def _small_model(optimizer="adam"):
    torch.manual_seed(0)
    model = gk.Sequential([L.Input((None, 2)), L.GRU(4), L.Dense(1)])
    model.compile(optimizer, "mse")
    return model


def test_resume_in_process_and_bad_files(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 5, 2)).astype("float32")
    y = x[:, -1, :1]
    model = _small_model()
    checkpoint = C.ModelCheckpoint(tmp_path / "ck.grukit", monitor="loss")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    again = _small_model()
    history = again.fit(x, y, epochs=3, verbose=0, resume=tmp_path / "ck.grukit")
    assert len(history.history["loss"]) == 3  # two restored, one new
    assert again.optimizer.state_dict()["state"][0]["step"].item() == 3  # one batch an epoch: 2 restored + 1
    model.save(tmp_path / "plain.grukit")
    with pytest.raises(ValueError, match="no training state"):
        _small_model().fit(x, y, epochs=3, verbose=0, resume=tmp_path / "plain.grukit")
    with pytest.raises(ValueError, match="optimizer is Adam"):
        _small_model("sgd").fit(x, y, epochs=3, verbose=0, resume=tmp_path / "ck.grukit")
    (tmp_path / "junk.grukit").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{junk")
    with pytest.raises(ValueError, match="not a grukit checkpoint"):
        _small_model().fit(x, y, epochs=3, verbose=0, resume=tmp_path / "junk.grukit")
    with pytest.raises(FileNotFoundError):
        _small_model().fit(x, y, epochs=3, verbose=0, resume=tmp_path / "missing.grukit")
    from grukit.training import checkpoint as resume

    weights, tensors, info = resume.read(str(tmp_path / "ck.grukit"))
    del info["history_epochs"]  # a state of another version: named, not a KeyError
    model.save(tmp_path / "old.grukit", training=(tensors, info))
    with pytest.raises(ValueError, match="missing \\['history_epochs'\\]"):
        _small_model().fit(x, y, epochs=3, verbose=0, resume=tmp_path / "old.grukit")


def test_resume_keeps_early_stopping_best_weights_and_lr_schedules(tmp_path):
    """The best epoch's weights (EarlyStopping restore_best_weights) and a torch LR
    scheduler's position travel in the checkpoint: 2 epochs + resume to 5 == 5 epochs."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(48, 6, 2)).astype("float32")
    y = x[:, -1, :1] * 2.0
    xv, yv = x[:8] + 0.5, y[:8] * -1.0  # a validation set that gets worse: the best epoch is early

    def run(epochs, resume=None, path=None):
        gk.set_seed(3)
        model = _small_model()
        model.compile("adam", "mse", learning_rate=0.05)
        cbs = [C.EarlyStopping("val_loss", patience=10, restore_best_weights=True),
               C.LearningRateScheduler(torch_scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 2, 0.5)),
               C.LearningRateScheduler(lambda epoch, lr: lr * 0.9)]
        if path is not None:
            cbs.append(C.ModelCheckpoint(path, monitor="val_loss"))
        history = model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, validation_data=(xv, yv),
                            callbacks=cbs, resume=resume)
        return model, history, cbs[0]

    full, full_history, stop = run(5)
    assert stop.best_state is not None
    best = int(np.argmin(full_history.history["val_loss"]))
    assert best < 4  # restoring the best weights changes the result
    lrs = full_history.history["learning_rate"]  # 0.05 * 0.9^(e+1) * 0.5^(e // 2): both schedules
    np.testing.assert_allclose(lrs, [0.05 * 0.9 ** (e + 1) * 0.5 ** (e // 2) for e in range(5)], rtol=1e-6)
    run(2, path=tmp_path / "ck.grukit")
    resumed, history, _ = run(5, resume=tmp_path / "ck.grukit")
    assert history.history == full_history.history and history.epoch == full_history.epoch == [0, 1, 2, 3, 4]
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_learning_rate_scheduler_bad_input():
    with pytest.raises(ValueError, match="exactly one"):
        C.LearningRateScheduler()
    with pytest.raises(TypeError, match="schedule must be callable"):
        C.LearningRateScheduler(0.1)
    model = _small_model()
    x = np.zeros((4, 3, 2), "float32")
    with pytest.raises(ValueError, match="finite rate"):
        model.fit(x, x[:, 0, :1], verbose=0, callbacks=[C.LearningRateScheduler(lambda e, lr: float("nan"))])
    with pytest.raises(TypeError, match="LRScheduler"):
        model.fit(x, x[:, 0, :1], verbose=0, callbacks=[C.LearningRateScheduler(torch_scheduler=lambda o: 3)])


def _with_header(src, dst, edit):
    """A copy of a grukit file whose JSON config is changed by edit(config): a crafted file."""
    import json
    import struct

    data = open(src, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    config = json.loads(header["__metadata__"]["grukit"])
    edit(config)
    header["__metadata__"]["grukit"] = json.dumps(config)
    raw = json.dumps(header).encode()
    open(dst, "wb").write(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


@pytest.mark.parametrize("field,layer,value", [("units", 1, 4_000_000_000), ("input_dim", 0, 10**12),
                                               ("output_dim", 0, 3_000_000_000), ("units", 2, -5),
                                               ("units", 1, "many")])
def test_a_crafted_header_is_refused_before_anything_is_allocated(tmp_path, field, layer, value):
    import time

    model = gk.Sequential([L.Input((6,), dtype="int64"), L.Embedding(20, 4), L.GRU(5), L.Dense(1)])
    path = tmp_path / "m.grukit"
    model.save(str(path))
    crafted = tmp_path / "crafted.grukit"
    _with_header(path, crafted, lambda c: c["model"]["layers"][layer + 1]["config"].__setitem__(field, value))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=field):
        gk.load(str(crafted))
    assert time.perf_counter() - start < 1.0
    shape_bomb = tmp_path / "shape.grukit"
    _with_header(path, shape_bomb, lambda c: c["model"]["input_spec"].__setitem__("shape", [10**12]))
    loaded = gk.load(str(shape_bomb))  # a huge T allocates nothing: the build takes one step
    assert loaded.predict(np.ones((2, 6), dtype="int64")).shape == (2, 1)


class _Crash(gk.callbacks.Callback):
    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("killed")


def test_backup_and_restore_goes_on_after_a_kill_as_keras(tmp_path):
    """Keras' BackupAndRestore: a run killed in epoch 3 is run again as it was and ends with the
    weights and history of a run never killed; the backup is gone once training ended."""
    x = np.random.default_rng(0).random((24, 6, 2)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None]

    def run(callbacks):
        gk.set_seed(3)
        model = gk.Sequential([gk.layers.GRU(4), gk.layers.Dense(1)])
        model.compile("adam", "mse")
        return model, model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=callbacks,
                                validation_split=0.25)

    whole, whole_history = run([])
    backup = gk.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(KeyboardInterrupt):
        run([backup, _Crash(at=2)])
    assert os.path.isfile(backup.path)  # epochs 1 and 2 backed up; killed in epoch 3, before its backup
    gk.set_seed(99)  # the run again restores the random generators as well
    model = gk.Sequential([gk.layers.GRU(4), gk.layers.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0, validation_split=0.25,
                        callbacks=[gk.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    for a, b in zip(model.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.history == whole_history.history
    assert not os.path.exists(backup.path)
    with pytest.raises(ValueError, match="save_freq must be 'epoch'"):
        gk.callbacks.BackupAndRestore(str(tmp_path), save_freq=100)
