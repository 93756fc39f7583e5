# `make test` and `make demo` each create .venv (when absent) and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: test demo bench lint tutorials docs docs-test clean gpu-check gpu-wheels

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test]"
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.docs-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test,docs,data]"
	touch $@

# One BLAS thread per test process: the suite's matrices are small, and a multithreaded BLAS
# sharing 2 cores with other work can be 100x slower on them (see README, Tests).
# The suite runs twice: on NumPy, then on the strict CuPy-like test device (tests/strict_device.py),
# which enforces CuPy's rules (no implicit host conversion, no NumPy operands) and counts host syncs.
ONE_THREAD := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
test: $(VENV)/.test-installed
	$(BIN)/python -m ruff check .
	$(ONE_THREAD) $(BIN)/python -m pytest -q
	$(ONE_THREAD) $(BIN)/python -m pytest -q --device strict

# The quick reproduction into runs/quick (its time: docs/timings.md). A second `make demo` resumes
# it: the runs the folder holds are kept, only missing ones run (a folder of another grid is
# refused). To start over: rm -rf runs/quick, or make demo DEMO_FLAGS=--force.
demo: $(VENV)/.demo-installed
	@echo "make demo: runs in runs/quick are kept and resumed; to start over: rm -rf runs/quick, or make demo DEMO_FLAGS=--force"
	$(BIN)/tinynormact reproduce --preset quick --out runs/quick $(DEMO_FLAGS)

# One BLAS thread, as the targets are stated (docs/benchmarks.md); bench_conv_step sets 1 and 2
# threads itself in a child process each.
bench: $(VENV)/.test-installed
	$(ONE_THREAD) $(BIN)/python -m benchmarks

lint: $(VENV)/.test-installed
	$(BIN)/python -m ruff check .

# Executed notebooks (with outputs and figures) in tutorials/notebooks/.
tutorials: $(VENV)/.docs-installed
	$(BIN)/python -m jupytext --to "notebooks//ipynb" --execute --run-path tutorials tutorials/[0-9][0-9]_*.py

# The site in site/ (open site/index.html): tutorials executed in fast mode (TINYNORMACT_TUTORIAL_FAST=0
# for full size), THEORY typeset, the API from the docstrings; KaTeX comes from the npm registry once.
# docs-test opens every page in headless Chromium (Debian's chromium and chromium-driver).
docs: $(VENV)/.docs-installed
	$(BIN)/python docs/_tools/fetch_assets.py
	$(BIN)/python docs/_tools/tutorials.py build/site-src/tutorials
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --clean

docs-test: docs
	$(BIN)/python -m pytest -q docs/_tools

# On a machine with an NVIDIA GPU and CuPy, in the Python environment already there (no .venv, no
# downloads): the suite on CuPy, the GPU benchmarks, the quick reproduction and tutorial 10 (GPU), one
# report in runs/gpu-check/report.md, under 8 minutes. Run `make gpu-wheels` first on a machine
# with a package index if the GPU machine lacks mnist1d, requests, pytest or hypothesis.
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py

# Pure-Python wheels that gpu-check unpacks when the GPU machine's environment lacks them.
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps -d wheels mnist1d
	$(PYTHON) -m pip download -q --only-binary=:all: --platform any --implementation py \
		--python-version 3.10 -d wheels requests pytest hypothesis

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .ruff_cache
