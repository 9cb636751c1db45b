# bertserve developer entry points. `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
PIP := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: install install-test serve test lint smoke eval-sts variants clean

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
	$(BIN)/hadolint Dockerfile docker/smoke/*.Dockerfile

## Container smoke test with podman (not part of `make test`; needs root, podman, runc, debootstrap:
## see DEVELOPERS.md): builds the image, runs it, checks health, /embed, /classify, /metrics and SIGTERM,
## then the compose stack with Prometheus scraping bertserve. Builds the image: about 10-20 minutes.
smoke: install-test
	PATH="$(CURDIR)/$(BIN):$$PATH" bash docker/smoke.sh

eval-sts: install-test
	$(BIN)/python -m benchmarks.eval_sts --url http://$(HOST):$(PORT)

## Build every compressed variant of the defaults, evaluate them side by side, write the report
## (benchmarks/VARIANTS.md, benchmarks/variants.png). About an hour on 2 cores; not part of the tests.
VARIANTS ?= $(or $(BERTSERVE_HOME),$(HOME)/.cache/bertserve)/variants
MODELS := $(BIN)/bertserve models
EMBEDDER := builtin:all-minilm-l6-v2
variants: install-test
	$(MODELS) data
	$(MODELS) quantize $(EMBEDDER) --out $(VARIANTS)/minilm-int8 --overwrite
	$(MODELS) quantize builtin:minilm-sentiment --out $(VARIANTS)/sentiment-int8 --overwrite
	$(MODELS) prune $(EMBEDDER) --method magnitude --sparsity 0.5 --out $(VARIANTS)/minilm-magnitude50 --overwrite
	$(MODELS) prune $(EMBEDDER) --keep-heads 0.5 --keep-neurons 0.5 --epochs 1 --out $(VARIANTS)/minilm-pruned --overwrite
	$(MODELS) prune $(EMBEDDER) --keep-heads 0.5 --keep-neurons 0.5 --no-recovery \
		--out $(VARIANTS)/minilm-pruned-norecovery --overwrite
	$(MODELS) prune $(EMBEDDER) --keep-heads 0.5 --keep-neurons 0.5 --no-recovery --importance random \
		--out $(VARIANTS)/minilm-pruned-random-norecovery --overwrite
	$(MODELS) distill $(EMBEDDER) --layers 3 --epochs 2 --out $(VARIANTS)/minilm-l3 --overwrite
	$(MODELS) prune $(VARIANTS)/minilm-l3 --keep-heads 0.75 --keep-neurons 0.5 --epochs 1 \
		--out $(VARIANTS)/minilm-l3-pruned --overwrite
	$(MODELS) quantize $(VARIANTS)/minilm-l3-pruned --out $(VARIANTS)/minilm-l3-pruned-int8 --overwrite
	$(MODELS) eval $(EMBEDDER) $(addprefix $(VARIANTS)/,minilm-int8 minilm-magnitude50 minilm-pruned \
		minilm-pruned-norecovery minilm-pruned-random-norecovery minilm-l3 minilm-l3-pruned minilm-l3-pruned-int8) --json benchmarks/variants-embed.json
	$(MODELS) eval builtin:minilm-sentiment $(VARIANTS)/sentiment-int8 --json benchmarks/variants-classify.json
	$(MODELS) report benchmarks/variants-embed.json benchmarks/variants-classify.json --out-dir benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
