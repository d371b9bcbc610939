# The README's two commands: `make demo` and `make test`. Both create .venv when
# it is missing. torch: a venv that already has it keeps it; otherwise
# torch==2.13.0 is installed (the CPU wheel this project is developed against).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
SRC    := pyproject.toml $(wildcard setup.py) $(wildcard grukit/csrc/*)

.PHONY: demo test test-isa bench sanitize install install-dev lint wheel clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

$(VENV)/.torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH)
	$(PIP) install --quiet ninja numpy
	@touch $@

$(VENV)/.installed: $(SRC) $(VENV)/.torch
	$(PIP) install --quiet --no-build-isolation -e ".[examples]"
	@touch $@

$(VENV)/.installed-dev: $(SRC) $(VENV)/.torch
	$(PIP) install --quiet --no-build-isolation -e ".[dev,examples,export]"
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: $(SRC) $(VENV)/.torch
	$(PIP) install --quiet --no-build-isolation -e ".[dev,examples,export,bench]"
	@touch $@ $(VENV)/.installed $(VENV)/.installed-dev

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(VENV)/bin/grukit train --out runs/demo

test: $(VENV)/.installed-dev
	$(PY) -m pytest

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/bench_cpu.py
	$(PY) benchmarks/bench_fit.py

# every kernel test under each instruction-set variant of the compiled engine (setup.py)
KERNEL_TESTS := tests/test_cpu_engine.py tests/test_layer_norm.py tests/test_recurrent_dropout.py \
	tests/test_zoneout.py tests/test_resets.py tests/test_mingru.py tests/test_quantize.py \
	tests/test_torch_parity.py tests/test_higher_order.py tests/test_isa.py
test-isa: $(VENV)/.installed-dev
	GRUKIT_ISA=base $(PY) -m pytest -q $(KERNEL_TESTS)
	GRUKIT_ISA=avx2 $(PY) -m pytest -q $(KERNEL_TESTS)
	GRUKIT_ISA=avx512 $(PY) -m pytest -q $(KERNEL_TESTS)

# what a release publishes: the sdist, and a wheel built in isolation against the venv's
# torch (pip finds it; no torch is downloaded), then auditwheel's report on it
wheel: $(VENV)/.torch
	$(PIP) install --quiet build auditwheel
	rm -rf dist
	$(PY) -m build --sdist --outdir dist .
	$(PIP) wheel --no-deps --wheel-dir dist .
	$(VENV)/bin/auditwheel show dist/grukit-*.whl

sanitize: $(VENV)/.installed-dev  # the kernels under AddressSanitizer (docs/fuzzing.md)
	$(PY) tools/sanitize.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info grukit/*.so grukit/_build.json
