"""Builds grukit's compiled CPU engine (grukit._C) at install time, never at import.

pyproject.toml holds the metadata; this file only adds the C++ extension. It needs
torch in the build environment, so the Makefile installs with
--no-build-isolation. Without torch there (or with GRUKIT_NO_EXTENSION=1) the
package installs without it and grukit runs on its reference engine.
"""

import os
import sys

from setuptools import setup

ext_modules, cmdclass = [], {}
if os.environ.get("GRUKIT_NO_EXTENSION") != "1":
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        print("grukit: torch is not importable at build time; installing without the "
              "compiled CPU engine (use pip install --no-build-isolation)", file=sys.stderr)
    else:
        flags, link = ["-O3", "-march=native", "-fopenmp", "-std=c++20"], ["-fopenmp"]
        if os.environ.get("GRUKIT_SANITIZE") == "address":  # tools/sanitize.py: AddressSanitizer build
            flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address", "-DGRUKIT_EXACT_BUFFERS",
                     *flags[1:]]
            link = [*link, "-fsanitize=address"]
        ext_modules = [CppExtension("grukit._C", ["grukit/csrc/gru.cpp", "grukit/csrc/mingru.cpp",
                                                        "grukit/csrc/int8.cpp"],
                                    extra_compile_args=flags, extra_link_args=link)]
        cmdclass = {"build_ext": BuildExtension.with_options(use_ninja=True)}

setup(ext_modules=ext_modules, cmdclass=cmdclass)
