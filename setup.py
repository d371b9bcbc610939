"""Builds grukit's compiled CPU engine at install time, never at import.

pyproject.toml holds the metadata; this file adds the C++ extension, once per
instruction set: ``grukit._C_base`` for the architecture's portable baseline (x86-64
without AVX, or armv8-a) and, on x86-64, ``grukit._C_avx2`` (AVX2 + FMA) and
``grukit._C_avx512`` (the same kernels with AVX-512's registers, and a packed matmul 16
floats wide: csrc/gemm.h). No ``-march=native``:
a wheel built on one machine runs on any other of its architecture, and grukit loads
the best variant the CPU has at import (grukit/engines.py; ``GRUKIT_ISA=avx2`` or
``=base`` forces a lower one; ``GRUKIT_ISAS=avx2,base`` builds only those).

The extension is built against the torch of the environment grukit is installed
into. ``pip install .`` / ``pip install grukit-*.tar.gz`` / ``pip wheel .`` build in
isolation, in an environment without torch, and no torch is downloaded for it (on
PyPI that would be a CUDA build of several GB): this file finds the torch of the
target environment (the site-packages of the interpreter pip runs it with) and uses
its headers. A build without any torch in reach installs grukit without the engine
(it then runs on its reference engine and says so once); so does
GRUKIT_NO_EXTENSION=1. The torch version the engine was built against is written
to grukit/_build.json: another torch minor version cannot load it (C++ ABI), and
grukit says so and runs on the reference engine until grukit is rebuilt.
"""

import json
import os
import platform
import sys
import sysconfig

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["grukit/csrc/gru.cpp", "grukit/csrc/mingru.cpp", "grukit/csrc/int8.cpp", "grukit/csrc/stream.cpp"]
VARIANTS = {  # machine -> {variant: flags}; the best variant the CPU has is loaded at import
    "x86_64": {"base": ["-march=x86-64", "-mtune=generic"],
               "avx2": ["-march=x86-64", "-mavx2", "-mfma", "-mf16c", "-mtune=generic"],
               # the same AVX2 kernels, with AVX-512's 32 vector registers and instructions
               # where the compiler finds a use (measured: benchmarks/README.md)
               "avx512": ["-march=x86-64", "-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512vl",
                          "-mavx512bw", "-mavx512dq", "-mtune=generic"]},
    "aarch64": {"base": ["-march=armv8-a"]},
}


def _torch():
    """torch from the build environment, else from the environment being installed into."""
    try:
        import torch
        return torch
    except ImportError:
        pass
    for key in ("purelib", "platlib"):  # pip's isolated build runs the target's interpreter
        path = sysconfig.get_paths()[key]
        if os.path.isdir(os.path.join(path, "torch")) and path not in sys.path:
            sys.path.append(path)
    try:
        import torch
        return torch
    except ImportError:
        return None


BUILD_INFO = os.path.join(HERE, "grukit", "_build.json")


def _extensions():
    if os.environ.get("GRUKIT_NO_EXTENSION") == "1":
        return [], {}
    torch = _torch()
    if torch is None:
        print("grukit: torch is in neither the build environment nor the one being installed into; "
              "installing without the compiled CPU engine", file=sys.stderr)
        return [], {}
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    variants = VARIANTS.get(machine, {"base": []})
    only = os.environ.get("GRUKIT_ISAS")  # e.g. "avx2,base": build only these (faster builds)
    if only:
        variants = {k: v for k, v in variants.items() if k in only.split(",")}
    if os.environ.get("GRUKIT_SANITIZE") == "address":  # tools/sanitize.py: one AddressSanitizer build
        name = "avx2" if "avx2" in variants else "base"
        variants = {name: variants[name]}
    base_flags, link = ["-O3", "-fopenmp", "-std=c++20"], ["-fopenmp"]
    if os.environ.get("GRUKIT_SANITIZE") == "address":
        base_flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address", "-DGRUKIT_EXACT_BUFFERS",
                      "-fopenmp", "-std=c++20"]
        link = [*link, "-fsanitize=address"]
    with open(BUILD_INFO, "w") as f:  # read by grukit/engines.py
        json.dump({"torch": torch.__version__.split("+")[0]}, f)
    exts = [CppExtension(f"grukit._C_{name}", SOURCES, extra_compile_args=[*base_flags, *flags],
                         extra_link_args=link) for name, flags in variants.items()]
    return exts, {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
