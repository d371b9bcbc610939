"""Which engine runs a GRU call.

``"reference"`` is the plain-PyTorch loop in reference.py, differentiated by
autograd. ``"cpu"`` is the fused compiled engine; it is built by the install
step, never at import. ``"auto"`` picks the fastest engine that supports the
call. When the compiled engine is missing (not built at install), a call under
"auto" or "cpu" warns once and runs on the reference engine.

The compiled extension is loaded when this module is imported (never built then),
so that choosing an engine is plain Python that torch.compile traces without a break.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import warnings
from typing import Any, Callable, Optional

import torch

from . import reference

ENGINES = ("auto", "reference", "cpu")

# --------------------------------------------------------------- what runs where
# The one table of which GRU option each engine, path, exporter and quantiser computes.
# The dispatcher (modules.GRU._run), gk.export and gk.quantize read it, and their errors
# name what is missing from it. A new option is added here and to each that computes it.
OPTIONS = {  # name: what it means, for error messages
    "reset_before": "reset_after=False",
    "layer_norm": "layer_norm=True",
    "zoneout": "zoneout > 0",
    "recurrent_dropout": "recurrent_dropout > 0 in training",
    "dropout": "dropout > 0 between layers in training",
    "resets": "resets= (state resets inside a sequence)",
}
SUPPORT = {
    "reference": frozenset(OPTIONS),
    "cpu": frozenset(OPTIONS),  # the fused layer op, with the hand-written backward
    "cpu-stack": frozenset({"reset_before"}),  # inference in one call for the whole stack
    "onnx": frozenset({"reset_before"}),  # ONNX's GRU operator (an inference graph)
    "int8": frozenset({"reset_before"}),  # gk.quantize's int8 engine (inference)
}


def options(gru: Any, training: bool = False, resets: bool = False) -> frozenset:
    """The options a GRU call uses (training-only ones only in training)."""
    used = []
    if not gru.reset_after:
        used.append("reset_before")
    if gru.layer_norm:
        used.append("layer_norm")
    if gru.zoneout:
        used.append("zoneout")
    if training and gru.recurrent_dropout:
        used.append("recurrent_dropout")
    if training and gru.dropout and gru.num_layers > 1:
        used.append("dropout")
    if resets:
        used.append("resets")
    return frozenset(used)


def supports(path: str, used: frozenset) -> bool:
    return used <= SUPPORT[path]


def require(path: str, used: frozenset, what: str) -> None:
    """ValueError naming the options of ``used`` that ``path`` does not compute."""
    missing = sorted(used - SUPPORT[path])
    if missing:
        computes = ", ".join(OPTIONS[o] for o in sorted(SUPPORT[path])) or "none of them"
        raise ValueError(f"{what} uses {', '.join(OPTIONS[m] for m in missing)}, which {path} does not "
                         f"compute (of the options it computes: {computes})")

# ------------------------------------------------------- the compiled CPU engine
# setup.py builds it once per instruction set: on x86-64 _C_avx512 (AVX-512), _C_avx2
# (AVX2 + FMA) and _C_base (the portable baseline); elsewhere _C_base. The best one this
# CPU has is loaded here, at import (never built then); GRUKIT_ISA=avx2 or =base forces a
# lower one (tests, bug reports).
ISAS = ("avx512", "avx2", "base")  # best first


def _cpu_isas() -> tuple[list[str], Optional[str]]:
    """The variants this CPU can run, best first, and a note on GRUKIT_ISA if it was ignored."""
    capability = torch.backends.cpu.get_cpu_capability()  # "AVX512", "AVX2", "DEFAULT", ...
    runnable = {"AVX512": list(ISAS), "AVX2": ["avx2", "base"]}.get(capability, ["base"])
    forced = os.environ.get("GRUKIT_ISA", "").strip().lower()
    if not forced:
        return runnable, None
    if forced not in ISAS:
        return runnable, f"GRUKIT_ISA={forced!r} is not one of {ISAS}; ignored"
    if forced not in runnable:
        return runnable, f"GRUKIT_ISA={forced!r} is above what this CPU runs ({capability}); ignored"
    return runnable[runnable.index(forced):], None


def _build_info() -> dict:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


_compiled: Optional[Any] = None
_isa: Optional[str] = None
_compiled_error: Optional[str] = None
_build = _build_info()
_runnable, _isa_note = _cpu_isas()
_built_for = _build.get("torch")
_running = torch.__version__.split("+")[0]
if _built_for and _built_for.split(".")[:2] != _running.split(".")[:2]:
    _compiled_error = (f"it was built against torch {_built_for} and this is torch {_running}, whose C++ "
                       "ABI differs; rebuild grukit against this torch (pip install --force-reinstall "
                       "--no-deps --no-binary grukit grukit, or pip install . in a checkout)")
else:
    for _name in _runnable:
        try:
            _compiled = importlib.import_module(f"grukit._C_{_name}")  # registers torch.ops.grukit
            _isa = _name
            break
        except ImportError as exc:
            _compiled_error = str(exc)
_warned = False


def _after_fork_in_child() -> None:
    """A forked child runs grukit (and torch) on one thread.

    GNU OpenMP's thread pool does not survive fork: a child whose parent ran a parallel
    region (any GRU call, grukit's or torch.nn.GRU's) hangs in its first parallel region
    with more than one thread. Servers fork their workers (gunicorn --preload, Celery
    prefork, multiprocessing pools) after loading a model, and each worker is one of many
    processes on the machine, so one thread each is also the right default; torch's own
    DataLoader workers do the same. A child may call torch.set_num_threads(n) afterwards
    only if its parent never ran a parallel region. Spawned processes are not affected.
    """
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def compiled_cpu() -> Optional[Any]:
    """The compiled CPU extension module, or None when it was not built."""
    return _compiled


def resolve(engine: str, x: torch.Tensor) -> str:
    """The engine that will actually run for ``engine`` requested on input x."""
    if engine == "reference" or (not torch.compiler.is_compiling() and transformed()):
        return "reference"
    cpu_ok = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if cpu_ok and compiled_cpu() is not None:
        return "cpu"
    if cpu_ok:  # "auto" or "cpu" on a CPU input, but the extension was not built
        _warn_missing("the compiled CPU engine is not built")
    elif engine == "cpu":
        _warn_missing(f"the CPU engine does not run {x.dtype} on {x.device}")
    return "reference"


def transformed() -> bool:
    """Whether a torch.func transform (grad, vjp, jacrev, jacfwd, vmap, functional_call
    under them) or forward-mode AD is active. The fused kernels have neither batching
    rules nor forward derivatives, so calls under them run on the reference engine,
    whose plain PyTorch ops support every transform: exact, at the reference's speed."""
    return (torch._C._functorch.peek_interpreter_stack() is not None
            or torch.autograd.forward_ad._current_level >= 0)


# the ops' Python side (fake implementations, autograd), only where they exist
_fused: Optional[Any] = None
if _compiled is not None:
    from . import function as _fused


def layer_fn(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The function that runs one layer-direction on the named engine."""
    return _fused.gru_layer if name == "cpu" else reference.gru_layer


def mingru_scan() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """minGRU's fused scan (cpu engine only)."""
    return _fused.mingru_scan


def stack_inference() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The compiled whole-stack inference call (cpu engine only)."""
    return _fused.gru_stack_inference


def _warn_missing(why: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"grukit: {why}; running on the reference engine, which is slower "
            "(reinstall grukit where torch is installed: pip install grukit, or pip install . in a "
            "checkout; engine_info() says why it is missing)",
            RuntimeWarning,
            stacklevel=4,
        )


def engine_info() -> dict[str, Any]:
    """What is built and what runs: engine names, availability, the instruction set the
    compiled engine runs with (``isa``) and the ones this CPU could run, threads."""
    compiled = compiled_cpu()
    return {
        "engines": {
            "reference": {"built": True, "runs": "plain PyTorch ops, autograd"},
            "cpu": {
                "built": compiled is not None,
                "runs": "fused C++ kernels, hand-written backward"
                if compiled is not None
                else f"not built ({_compiled_error})",
            },
        },
        "auto": "cpu" if compiled is not None else "reference",
        "isa": _isa,
        "isas": {"runnable": _runnable, "built": [isa for isa in ISAS if importlib.util.find_spec(
            f"grukit._C_{isa}") is not None], "note": _isa_note},
        "built_against_torch": _built_for,
        "threads": torch.get_num_threads(),
    }
