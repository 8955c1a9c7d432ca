# xlt-bench developer commands. `make install` then `make bench`; `make test` runs the whole suite offline.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared

.PHONY: install demo bench bench-all test test-fast bench-pytest bench-ci gate clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	# torch first and pinned, so pip takes the CPU wheel instead of resolving a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo "installed: run 'make bench' (or '$(BIN)/xlt-bench --help')"

# A smoke run in well under a minute: 2-layer tiny-xlmr, three languages, eager only; writes results/demo/.
demo:
	$(BIN)/xlt-bench run --model tiny-xlmr --tasks xnli --langs en,de,th --limit 32 --backends eager \
		--batching static,dynamic --out results/demo --force

bench:
	$(BIN)/xlt-bench run --config benchmarks/default.toml --out results/bench --force

bench-all:
	$(BIN)/xlt-bench run --config benchmarks/all-backends.toml --out results/bench-all --force

test:
	XLT_SHARED=$(SHARED) $(BIN)/python -m pytest -q

test-fast:
	XLT_SHARED=$(SHARED) $(BIN)/python -m pytest -q -m "not slow"

bench-pytest:
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-storage=results/pytest-benchmark --benchmark-autosave -q

bench-ci:
	$(BIN)/xlt-bench run --config benchmarks/ci.toml --cost-model results/baseline/results.json --out results/ci --force

gate: bench-ci
	$(BIN)/xlt-bench gate --baseline results/baseline/results.json --current results/ci

clean:
	rm -rf results/bench results/ci .xlt_cache
