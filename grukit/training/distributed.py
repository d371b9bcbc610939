"""Data-parallel training under ``torchrun``: PyTorch's DistributedDataParallel, no
home-made engine.

``fit`` calls :func:`context` first. Launched by ``torchrun --nproc_per_node=N`` (the
environment then holds WORLD_SIZE > 1), it joins the process group (gloo on the CPU,
nccl on GPUs), wraps the model in DistributedDataParallel, which averages gradients
across processes after each backward, and gives each process its share of every
batch: ``batch_size`` is the global batch, cut into N contiguous parts of the same
shuffled order that every process draws (``gk.set_seed`` makes the orders agree); a
torch Dataset is drawn by a DistributedSampler (a local batch of batch_size / N), and a
DataLoader must come with its own DistributedSampler. Each process's gradient is
weighted by its share of the batch's rows, so an uneven last batch trains as on one
process.
The epoch's logs are summed over processes, so that every process sees the same
values and callbacks such as EarlyStopping decide alike; only process 0 prints and
writes files (ModelCheckpoint, CSVLogger).
"""

from __future__ import annotations

import atexit
import os
from typing import Optional

import torch


def world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def context(device: torch.device) -> Optional[tuple[int, int]]:
    """(rank, world size) when launched by torchrun with more than one process, else None;
    joins the default process group on first use."""
    if world_size() <= 1:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run without torchrun")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # one GPU per process
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    return dist.get_rank(), dist.get_world_size()


def _leave() -> None:
    """Leave the process group grukit joined, at the process's exit: destroyed explicitly, as
    PyTorch asks, its worker threads are joined before the interpreter shuts down (left to
    the interpreter's teardown, a gloo process could abort at exit with "terminate called
    without an active exception": seen once in CI, in tests/test_distributed.py)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """Whether this process prints and writes files (process 0, or a run without torchrun)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def sum_over_processes(values: list[float]) -> list[float]:
    """Element-wise sums over every process (the same list on all of them)."""
    import torch.distributed as dist

    # nccl reduces GPU tensors only
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def agree(value):
    """Process 0's ``value`` on every process (a picklable object); ``value`` itself
    without a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
