# canao — every install step lives here; a fresh clone needs only `make demo` or `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TVM_NUM_THREADS ?= 2
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint typecheck pytest bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: 2.13.0 is a local CPU wheel; anything else pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/canao demo

lint: install
	$(BIN)/ruff check canao tests benchmarks
	$(BIN)/ruff format --check canao tests benchmarks

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q -ra

test: lint typecheck pytest

bench: install
	$(BIN)/python benchmarks/runtimes.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
