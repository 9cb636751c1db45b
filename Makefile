# bertserve developer entry points. `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
PIP := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: install install-test serve test lint eval-sts clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, from the constraint, so that nothing later can pull a CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) torch
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## Serve the embedded default models (builds the sentiment classifier on first start).
serve: install
	$(BIN)/bertserve serve --host $(HOST) --port $(PORT)

## Run the whole test suite (unit, integration, e2e). The tests start their own redis-server and
## Prometheus on free loopback ports: the Debian packages are installed when missing.
test: install-test
	@command -v redis-server >/dev/null && command -v prometheus >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server prometheus)
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check service models tests benchmarks
	$(BIN)/mypy

eval-sts: install-test
	$(BIN)/python -m benchmarks.eval_sts --url http://$(HOST):$(PORT)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
