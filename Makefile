# `make test` and `make demo` each create .venv (when absent) and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: test demo bench lint tutorials clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test]"
	touch $@

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[data]"
	touch $@

$(VENV)/.docs-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test,docs,data]"
	touch $@

test: $(VENV)/.test-installed
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q

demo: $(VENV)/.demo-installed
	$(BIN)/tinynormact demo

bench: $(VENV)/.test-installed
	$(BIN)/python -m benchmarks

lint: $(VENV)/.test-installed
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
