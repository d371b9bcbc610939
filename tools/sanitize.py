"""Run grukit's compiled kernels under AddressSanitizer.

    python tools/sanitize.py            # build, control, then the kernel tests and the fuzz suite
    python tools/sanitize.py -- -x -k gru   # extra pytest arguments after --

1. Builds grukit's compiled engine (grukit._C_avx2, or _C_base off x86-64)
   with ``-fsanitize=address -O1 -g`` (setup.py, GRUKIT_SANITIZE=address)
   into build/asan/, beside a copy of the Python package, so the normal build stays as it is.
   In that build every scratch buffer is allocated at its exact size (GRUKIT_EXACT_BUFFERS;
   the normal build reuses larger ones), so a read past a buffer's end reaches a red zone.
2. Control: a tiny extension that reads one float past a tensor's end must be reported
   as a heap-buffer-overflow in this very set-up (Python, torch, the preloaded ASan
   runtime); otherwise a clean run would prove nothing.
3. Runs the fuzz suite (tests/test_fuzz.py) and the kernel tests with the ASan build
   preloaded and checks that the instrumented module is the one imported. Any report
   aborts the run with exit code 99 and the report on stderr.

Leak checking is off: CPython and torch keep memory to the end on purpose. The report
of the last run is in docs/fuzzing.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "asan")
LIB = os.path.join(OUT, "lib")
TESTS = ["tests/test_fuzz.py", "tests/test_cpu_engine.py", "tests/test_layer_norm.py",
         "tests/test_quantize.py",
         "tests/test_mingru.py", "tests/test_resets.py", "tests/test_zoneout.py",
         "tests/test_recurrent_dropout.py", "tests/test_reference.py"]

CONTROL = r"""
import sys, torch
from torch.utils.cpp_extension import load_inline
src = '''
#include <torch/extension.h>
double read_past_end(torch::Tensor t) {  // one element past the tensor's storage
  const float* p = t.data_ptr<float>();
  return p[t.numel()];
}
'''
mod = load_inline("asan_control", cpp_sources=src, functions=["read_past_end"],
                  extra_cflags=["-O0", "-g", "-fsanitize=address"], extra_ldflags=["-fsanitize=address"],
                  build_directory=sys.argv[1])
print(mod.read_past_end(torch.zeros(1000)))
"""


def _asan_runtime() -> str:
    """What to preload: the ASan runtime, and libstdc++ with it (python itself is C, so
    without it ASan cannot find the real __cxa_throw when torch throws a C++ exception)."""
    paths = []
    for lib in ("libasan.so", "libstdc++.so"):
        path = subprocess.run(["g++", f"-print-file-name={lib}"], capture_output=True, text=True,
                              check=True).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            sys.exit(f"sanitize: g++ has no {lib} (apt install gcc g++)")
        paths.append(os.path.realpath(path))
    return " ".join(paths)


REPORTS = os.path.join(OUT, "reports")  # asan.<pid>: pytest captures stderr, so reports go to files


# Imported at start-up from LIB (on PYTHONPATH): an editable install (`pip install -e .`, as the
# Makefile does) puts a finder for grukit ahead of PYTHONPATH, which would import the checkout's own
# grukit and its uninstrumented engine; the finder is dropped so that LIB's grukit is the one found.
SITECUSTOMIZE = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
"""


def _env(runtime: str, isa: str = "") -> dict:
    # the ASan build is one variant; GRUKIT_ISA makes a CPU with a better one load it all the same
    return {**os.environ, "LD_PRELOAD": runtime, "PYTHONPATH": LIB, "GRUKIT_ISA": isa,
            "ASAN_OPTIONS": f"detect_leaks=0:halt_on_error=1:exitcode=99:log_path={REPORTS}/asan"}


def _reports() -> str:
    if not os.path.isdir(REPORTS):
        return ""
    texts = []
    for name in sorted(os.listdir(REPORTS)):
        with open(os.path.join(REPORTS, name)) as f:
            texts.append(f"--- {name}\n{f.read()}")
    return "\n".join(texts)


def build() -> tuple[str, str]:
    """The compiled engine with AddressSanitizer in build/asan/lib/grukit, beside the package's
    Python files: its path and its variant."""
    shutil.rmtree(OUT, ignore_errors=True)  # a fresh build: objects of an older source never linger
    shutil.copytree(os.path.join(ROOT, "grukit"), os.path.join(LIB, "grukit"),
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    start = time.time()
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", LIB, "--build-temp",
                    os.path.join(OUT, "tmp")], cwd=ROOT, check=True,
                   env={**os.environ, "GRUKIT_SANITIZE": "address"})
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    path = lambda isa: os.path.join(LIB, "grukit", f"_C_{isa}{suffix}")  # noqa: E731
    isa = next(isa for isa in ("avx2", "base") if os.path.exists(path(isa)))
    so = path(isa)
    with open(os.path.join(LIB, "sitecustomize.py"), "w") as f:
        f.write(SITECUSTOMIZE)
    symbols = subprocess.run(["nm", "-D", so], capture_output=True, text=True, check=True).stdout
    if "__asan_report_load" not in symbols:
        sys.exit(f"sanitize: {so} is not instrumented")
    print(f"built {os.path.relpath(so, ROOT)} with AddressSanitizer in {time.time() - start:.0f} s")
    return so, isa


def control(runtime: str) -> None:
    """A known out-of-bounds read must be caught in this set-up."""
    shutil.rmtree(REPORTS, ignore_errors=True)
    folder = os.path.join(OUT, "control")
    os.makedirs(folder, exist_ok=True)
    res = subprocess.run([sys.executable, "-c", CONTROL, folder], capture_output=True, text=True,
                         env=_env(runtime), cwd=OUT)
    if res.returncode != 99 or "heap-buffer-overflow" not in _reports():
        sys.exit(f"sanitize: the control's out-of-bounds read was NOT reported (exit {res.returncode}):\n"
                 f"{res.stdout[-1000:]}{res.stderr[-3000:]}{_reports()}")
    print("control: a read one float past a tensor is reported as heap-buffer-overflow (exit 99): "
          "the set-up catches what it should")


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    runtime = _asan_runtime()
    so, isa = build()
    control(runtime)
    env = _env(runtime, isa)
    which = subprocess.run([sys.executable, "-c", "import grukit, grukit.engines as e; "
                            "print(e.compiled_cpu().__file__); "
                            "print(grukit.engine_info()['engines']['cpu']['built'])"],
                           capture_output=True, text=True, env=env, cwd=OUT)  # not ROOT: its grukit/
    lines = which.stdout.split()
    if which.returncode or lines[:1] != [so] or lines[1:] != ["True"]:
        sys.exit(f"sanitize: the instrumented module is not the one imported: {which.stdout}{which.stderr}")
    shutil.rmtree(REPORTS, ignore_errors=True)
    print(f"running {len(TESTS)} test files with {os.path.relpath(so, ROOT)} and {runtime} preloaded")
    start = time.time()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *(os.path.join(ROOT, t) for t in TESTS), *extra], env=env, cwd=OUT)
    took = time.time() - start
    reports = _reports()
    if reports or res.returncode == 99:
        print(f"{reports}\nsanitize: AddressSanitizer REPORTED an error after {took:.0f} s", file=sys.stderr)
        return 99
    if res.returncode == 0:
        print(f"sanitize: clean: no AddressSanitizer report, all tests passed ({took:.0f} s)")
    return res.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
