"""Which engine runs a GRU call.

``"reference"`` is the plain-PyTorch loop in reference.py, differentiated by
autograd. ``"cpu"`` is the fused compiled engine; it is built by the install
step, never at import. On CUDA, ``"cudnn"`` is PyTorch's own cuDNN GRU (for the
configurations cuDNN computes) and ``"triton"`` the fused Triton kernels of
grukit.gpu (every option; Triton is an optional extra). ``"auto"`` picks the
fastest engine that supports the call: on the CPU "cpu", on CUDA "cudnn" where it
computes the call and "triton" elsewhere. When the engine it would pick is missing
(the compiled engine not built, Triton not installed), a call warns once and runs
on the reference engine.

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

ENGINES = ("auto", "reference", "cpu", "cudnn", "triton")

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
    "cudnn": frozenset({"dropout"}),  # torch's cuDNN GRU (the whole stack; inter-layer dropout)
    "triton": frozenset(OPTIONS),  # grukit.gpu's Triton kernels, with the hand-written backward
    "cpu-stack": frozenset({"reset_before"}),  # inference in one call for the whole stack
    "onnx": frozenset({"reset_before"}),  # ONNX's GRU operator (an inference graph)
    "int8": frozenset({"reset_before"}),  # gk.quantize's int8 engine (inference)
    # bfloat16 weights on the compiled step engine (csrc/stream.cpp): inference
    "cpu-bf16": frozenset({"reset_before", "layer_norm", "zoneout"}),
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


def resolve(engine: str, x: torch.Tensor, used: frozenset = frozenset(), lengths: bool = False) -> str:
    """The engine that will actually run for ``engine`` requested on input x, for a call
    that uses the options ``used`` (see options()), with per-row lengths or not."""
    if engine == "reference" or (not torch.compiler.is_compiling() and transformed()):
        return "reference"
    if x.device.type == "cuda":
        return _resolve_cuda(engine, x, used, lengths)
    if engine == "triton" and x.device.type == "cpu" and triton_interpreted():
        if triton_error() is None and x.dtype in TRITON_DTYPES:
            return "triton"  # the kernels under Triton's interpreter (tests, CI)
    if engine in ("cudnn", "triton"):
        _warn_missing(f"engine={engine!r} runs on CUDA tensors" + (
            " (or on CPU tensors under TRITON_INTERPRET=1)" if engine == "triton" else "")
            + f", and this input is on {x.device}", kind=engine)
    if (x.dtype == torch.bfloat16 and x.device.type == "cpu" and engine in ("auto", "cpu")
            and supports("cpu-bf16", used) and hasattr(compiled_cpu(), "StreamCore")):
        return "cpu-bf16"  # inference calls only: GRU._run falls back to the reference otherwise
    cpu_ok = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if cpu_ok and compiled_cpu() is not None:
        return "cpu" if supports("cpu", used) else "reference"
    if cpu_ok:  # "auto" or "cpu" on a CPU input, but the extension was not built
        _warn_missing("the compiled CPU engine is not built")
    elif engine == "cpu":
        _warn_missing(f"the CPU engine does not run {x.dtype} on {x.device}")
    return "reference"


CUDNN_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _resolve_cuda(engine: str, x: torch.Tensor, used: frozenset, lengths: bool = False) -> str:
    if engine == "cudnn":
        require("cudnn", used, "engine='cudnn'")
        return "cudnn"
    if engine == "cpu":
        raise ValueError(f"engine='cpu' runs on CPU tensors; this input is on {x.device} (use engine='auto', "
                         "'cudnn' or 'triton' there, or move the model to the CPU)")
    triton_ok = x.dtype in TRITON_DTYPES and triton_error() is None
    # with lengths, cuDNN needs the batch packed and unpacked around it (and the lengths
    # on the host: a sync); the Triton kernels mask rows in place: measured on an H200,
    # 2.8x faster at B=64, H=512, T=200 (benchmarks/README.md)
    if (engine == "auto" and supports("cudnn", used) and x.dtype in CUDNN_DTYPES
            and not (lengths and triton_ok)):
        return "cudnn"
    if triton_ok:
        return "triton"
    why = triton_error() or f"the Triton engine does not run {x.dtype}"
    _warn_missing(f"{why}; this call's options ({', '.join(sorted(used)) or 'none'}) need it on CUDA",
                  kind="triton")
    return "reference"


# ------------------------------------------------------------- the Triton engine
# Loaded on first use, never at import: importing grukit must not need triton.
_triton_modules: dict[str, Any] = {}
_triton_error: Optional[str] = None
_triton_checked = False


def triton_interpreted() -> bool:
    """Whether Triton kernels run under its interpreter (TRITON_INTERPRET=1): on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@torch.compiler.assume_constant_result  # torch.compile must not trace the import check
def triton_error() -> Optional[str]:
    """Why the Triton engine cannot run here, or None when it can."""
    global _triton_checked, _triton_error
    if not _triton_checked:
        _triton_checked = True
        if importlib.util.find_spec("triton") is None:
            _triton_error = "Triton is not installed (pip install 'grukit[triton]')"
        else:
            try:
                from .gpu import recurrence, scan  # noqa: F401  (registers the ops)

                _triton_modules.update(recurrence=recurrence, scan=scan)
            except Exception as exc:  # a Triton too old, or broken
                _triton_error = f"Triton did not load: {type(exc).__name__}: {exc}"
    return _triton_error


def triton_version() -> Optional[str]:
    if importlib.util.find_spec("triton") is None:
        return None
    from importlib.metadata import version

    return version("triton")


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

    _fused.use_extension(_compiled)


def layer_fn(name: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The function that runs one layer-direction on the named engine."""
    if name == "cpu":
        return _fused.gru_layer
    if name == "triton":
        triton_error()
        return _triton_modules["recurrence"].gru_layer
    return reference.gru_layer


def mingru_scan(name: str = "cpu") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """minGRU's fused scan on the named engine ("cpu" or "triton")."""
    if name == "triton":
        triton_error()
        return _triton_modules["scan"].mingru_scan
    return _fused.mingru_scan


def cudnn_stack() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """torch's own GRU function for the whole stack (grukit.gpu.cudnn)."""
    from .gpu import cudnn

    return cudnn.gru_stack


def stack_inference() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The compiled whole-stack inference call (cpu engine only)."""
    return _fused.gru_stack_inference


def cell_inference() -> Callable[..., torch.Tensor]:
    """The compiled one-step inference call of gk.GRUCell (cpu engine only)."""
    return _fused.gru_cell_inference


_warned_kinds: set[str] = set()


def _warn_missing(why: str, kind: str = "cpu") -> None:
    """Warn once per kind of missing engine."""
    if kind in _warned_kinds:
        return
    _warned_kinds.add(kind)
    fix = ("reinstall grukit where torch is installed: pip install grukit, or pip install . in a checkout"
           if kind == "cpu" else "see gk.engine_info()")
    warnings.warn(f"grukit: {why}; running on the reference engine, which is slower ({fix}; "
                  "engine_info() says why it is missing)", RuntimeWarning, stacklevel=4)


def engine_info() -> dict[str, Any]:
    """What is built and what runs: engine names, availability, the instruction set the
    compiled engine runs with (``isa``) and the ones this CPU could run, threads, and the
    GPU engines with the device they would run on and what is missing."""
    compiled = compiled_cpu()
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else None
    terr = triton_error()
    cudnn_ok = cuda and torch.backends.cudnn.is_available()
    return {
        "engines": {
            "reference": {"built": True, "runs": "plain PyTorch ops, autograd"},
            "cpu": {
                "built": compiled is not None,
                "runs": "fused C++ kernels, hand-written backward"
                if compiled is not None
                else f"not built ({_compiled_error})",
            },
            "cudnn": {
                "built": cudnn_ok,
                "runs": f"torch's cuDNN GRU (cuDNN {torch.backends.cudnn.version()}) on {device}" if cudnn_ok
                else "needs a CUDA device with cuDNN (none here)" if not cuda
                else "cuDNN is not available to this torch",
            },
            "triton": {
                "built": terr is None,
                "runs": (f"fused Triton {triton_version()} kernels, hand-written backward, on "
                         + (device if cuda else "CPU tensors under TRITON_INTERPRET=1" if triton_interpreted()
                            else "CUDA tensors (no CUDA device here)")) if terr is None else terr,
            },
        },
        "auto": "cpu" if compiled is not None else "reference",
        "auto_cuda": ("cudnn where it computes the call, else " + ("triton" if terr is None else "reference"))
        if cuda else None,
        "device": device,
        "isa": _isa,
        "isas": {"runnable": _runnable, "built": [isa for isa in ISAS if importlib.util.find_spec(
            f"grukit._C_{isa}") is not None], "note": _isa_note},
        "built_against_torch": _built_for,
        "threads": torch.get_num_threads(),
    }
