"""The Triton engine's per-step loops, replayed as CUDA graphs.

Step by step, a layer's forward launches two or three GPU kernels per step and its
backward three or four: T=100 makes a few hundred launches, and each costs the host
10-30 us (Python, the launcher), far more than the kernel itself at most sizes. A
CUDA graph records the launches once and replays them with one call (the same idea
as torch.compile's mode="reduce-overhead").

replay(key, fn, inputs) returns fn(*inputs). The first call with a given key and
input shapes runs fn as it is (that also compiles the Triton kernels); the second
captures it into a graph over copies of the inputs ("static" tensors); from then on
the inputs are copied into those, the graph is replayed and its outputs are copied
out (the caller keeps them; the next replay overwrites the graph's). The last
MAX_GRAPHS graphs are kept, each with its inputs, outputs and memory pool.

fn must be a pure function of its tensor inputs that only launches work on the
current stream: no host synchronisation, no random numbers, no mutation of its
inputs. Graphs are not used on the CPU (the interpreter), while a graph is already
being captured (torch.compile's cudagraphs: the launches go into that one), or with
GRUKIT_TRITON_GRAPHS=0.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

ENABLED = os.environ.get("GRUKIT_TRITON_GRAPHS", "1") != "0"
MAX_GRAPHS = 16

_SEEN = object()  # a key met once: the next call captures it


class _Graph:
    def __init__(self, graph: torch.cuda.CUDAGraph, inputs: list[Optional[Tensor]], outputs: list[Tensor]):
        self.graph, self.inputs, self.outputs = graph, inputs, outputs


_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()  # a graph's static tensors serve one replay at a time


def usable(inputs: Sequence[Optional[Tensor]]) -> bool:
    """Whether replay may capture: CUDA tensors, graphs on, no capture under way."""
    first = next((t for t in inputs if t is not None), None)
    return (ENABLED and first is not None and first.is_cuda
            and not torch.cuda.is_current_stream_capturing())


def _signature(inputs: Sequence[Optional[Tensor]]) -> tuple:
    return tuple(None if t is None else (tuple(t.shape), tuple(t.stride()), t.dtype, t.device)
                 for t in inputs)


def _remember(key: tuple, value: object) -> None:
    _cache[key] = value
    _cache.move_to_end(key)
    while len(_cache) > MAX_GRAPHS:
        _cache.popitem(last=False)


def _capture(fn: Callable[..., list[Tensor]], inputs: Sequence[Optional[Tensor]]) -> _Graph:
    static = [None if t is None else t.clone() for t in inputs]
    side = torch.cuda.Stream(device=static[0].device if static[0] is not None else None)
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # a warm-up on a side stream, as torch.cuda.graphs asks
        fn(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        outputs = fn(*static)
    return _Graph(graph, static, outputs)


def replay(key: tuple, fn: Callable[..., list[Tensor]], inputs: Sequence[Optional[Tensor]]) -> list[Tensor]:
    """fn(*inputs), from a CUDA graph once the same key and shapes were met before."""
    if not usable(inputs):
        return fn(*inputs)
    full = (key, _signature(inputs))
    with _lock:
        entry = _cache.get(full)
        if entry is None:
            _remember(full, _SEEN)
        elif entry is _SEEN:
            entry = _capture(fn, inputs)
            _remember(full, entry)
        else:
            _cache.move_to_end(full)
        if isinstance(entry, _Graph):
            for static, t in zip(entry.inputs, inputs, strict=True):
                if t is not None:
                    static.copy_(t)
            entry.graph.replay()
            return [t.clone() for t in entry.outputs]
    return fn(*inputs)


def clear() -> None:
    """Forget every graph (frees their memory)."""
    with _lock:
        _cache.clear()
