# The README's two commands: `make demo` and `make test`. Both create .venv when
# it is missing. torch: a venv that already has it keeps it; otherwise
# torch==2.13.0 is installed (the CPU wheel this project is developed against).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
SRC    := pyproject.toml $(wildcard setup.py) $(wildcard grukit/csrc/*)

.PHONY: demo test bench sanitize install install-dev lint clean

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

sanitize: $(VENV)/.installed-dev  # the kernels under AddressSanitizer (docs/fuzzing.md)
	$(PY) tools/sanitize.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info grukit/*.so
