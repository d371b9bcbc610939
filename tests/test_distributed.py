"""fit under torchrun: 2 processes with DistributedDataParallel (gloo) end one epoch with
the weights of a single process trained on the same global batches."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow  # subprocesses: `pytest -m 'not slow'` skips them

SCRIPT = """
import os, sys
import numpy as np, torch, grukit as gk
from grukit import layers as L, callbacks as C
torch.set_num_threads(1)
out = sys.argv[1]
gk.set_seed(0)
x = np.random.normal(size=(99, 9, 3)).astype("float32")  # the last batch of 3 splits 2 + 1
x[::4, 6:] = 0
y = (x[:, :, 0].sum(1, keepdims=True) > 0).astype("float32")
model = gk.Sequential([L.Input((None, 3)), L.Masking(0.0), L.Bidirectional(L.GRU(12, return_sequences=True)),
                       L.GRU(8), L.Dense(1, activation="sigmoid")])
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
data = {"x": x}
if len(sys.argv) > 2:  # a torch Dataset: under torchrun grukit gives it a DistributedSampler; alone, the
    # same sampler over one replica draws the same global batches
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler
    ds = TensorDataset(torch.from_numpy(x[:96]), torch.from_numpy(y[:96]))
    alone = DataLoader(ds, batch_size=16, sampler=DistributedSampler(ds, num_replicas=1, rank=0))
    data, y = {"x": ds if "WORLD_SIZE" in os.environ else alone}, None
history = model.fit(**data, y=y, epochs=2, batch_size=16, verbose=0, shuffle=True,
                    callbacks=[C.CSVLogger(out + ".csv"), C.ModelCheckpoint(out + ".grukit", monitor="loss")])
rank = int(os.environ.get("RANK", "0"))
np.save(f"{out}.rank{rank}.npy", np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]))
np.save(f"{out}.loss{rank}.npy", np.array(history.history["loss"]))
"""


def _torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
@pytest.mark.parametrize("source", ["arrays", "dataset"])
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, source):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    extra = [] if source == "arrays" else ["dataset"]
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "single"), *extra],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([*_torchrun(), "--nproc_per_node=2", "--master_port=29517", str(script),
                          str(tmp_path / "ddp"), *extra], capture_output=True, text=True, timeout=300,
                         env=env)
    assert ddp.returncode == 0, ddp.stdout[-2000:] + ddp.stderr[-3000:]
    one = np.load(tmp_path / "single.rank0.npy")
    for rank in (0, 1):  # both processes hold the same weights, those of the single process
        np.testing.assert_allclose(np.load(tmp_path / f"ddp.rank{rank}.npy"), one, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "ddp.loss0.npy"), np.load(tmp_path / "ddp.loss1.npy"))
    np.testing.assert_allclose(np.load(tmp_path / "ddp.loss0.npy"), np.load(tmp_path / "single.loss0.npy"),
                               rtol=1e-5)
    lines = (tmp_path / "ddp.csv").read_text().splitlines()
    assert len(lines) == 3  # one writer (process 0): a header and two epochs
    assert (tmp_path / "ddp.grukit").exists()


def test_each_process_gets_its_own_part_of_every_global_batch():
    from grukit.training.data import Batches as _Batches

    x = torch.arange(50, dtype=torch.float32)[:, None, None].expand(50, 4, 1).contiguous()
    y = torch.arange(50, dtype=torch.float32)[:, None]

    def batches(shard):
        torch.manual_seed(3)  # every process draws the same shuffled order
        return [yb[:, 0].long().tolist() for _, yb, _ in _Batches(x, y, 16, True, True, shard=shard)]

    whole, first, second = batches(None), batches((0, 2)), batches((1, 2))
    assert len(first) == len(second) == len(whole) == 4  # the last global batch holds 2: one each
    for w, a, b in zip(whole, first, second, strict=True):
        assert a + b == w and not set(a) & set(b)
        assert abs(len(a) - len(b)) <= 1
    three = batches((2, 3))
    assert len(three) == 3  # a last batch of 2 cannot feed 3 processes: every process skips it


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_grukit_train_under_torchrun(tmp_path):
    """`grukit train` under torchrun: one process prints and writes; the model equals a
    single-process run's (the global batch of 32 splits 16 + 16, the last one 14 + 13)."""
    from grukit import load

    config = tmp_path / "job.toml"
    config.write_text("[train]\nepochs = 3\n[model]\nunits = 16\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = ["-m", "grukit", "train", str(config), "--out"]
    single = subprocess.run([sys.executable, *cli, str(tmp_path / "one")], capture_output=True, text=True,
                            timeout=300, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([*_torchrun(), "--nproc_per_node=2", "--master_port=29519", *cli,
                          str(tmp_path / "two")], capture_output=True, text=True, timeout=300, env=env)
    assert ddp.returncode == 0, ddp.stdout[-2000:] + ddp.stderr[-3000:]
    # process 0 only prints: each of the job's two networks (grukit/app/forecast.py) once
    assert ddp.stdout.count("Epoch 3/3") == single.stdout.count("Epoch 3/3") == 2
    assert ddp.stdout.count("grukit train:") == 1
    assert ddp.stdout.count("test set") == 1
    files = [sorted(p.name for p in (tmp_path / run).iterdir()) for run in ("one", "two")]
    assert files[0] == files[1]
    for a, b in zip(load(str(tmp_path / "one" / "model.grukit")).parameters(),
                    load(str(tmp_path / "two" / "model.grukit")).parameters(), strict=True):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=0, atol=1e-5)
