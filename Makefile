# tasktool: `make demo` sets up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default (it lies on local disk here); GPU users: make install TORCH_SPEC="torch"
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# make bench BENCH_ARGS=--quick: a short benchmark run
BENCH_ARGS ?=

.PHONY: install test test-fast lint format demo bench smoke clean gpu-check

$(BIN)/tasktool: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/tasktool

install: $(BIN)/tasktool

test: install
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check tasktool tests benchmarks
	$(BIN)/ruff format --check tasktool tests benchmarks

format: install
	$(BIN)/ruff format tasktool tests benchmarks
	$(BIN)/ruff check --fix tasktool tests benchmarks

demo: install
	$(BIN)/python -m tasktool.demo

bench: install
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

smoke: install
	$(BIN)/tasktool smoke

# on a CUDA machine (after `make install TORCH_SPEC=torch`): every task on the GPU, then encoder and
# generation speed against the pipeline; figures under "gpu" in benchmarks/results.json (GPU_ARGS=--quick)
GPU_ARGS ?=
gpu-check: install
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python benchmarks/gpu_check.py $(GPU_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-out
