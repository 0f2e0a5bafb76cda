# Every target sets up what it needs: a fresh clone only needs `make run` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXAMPLE ?= examples/event_driven.yaml
ONLY   ?=
PORT   ?= 8080
RUN_DB ?= .conveyor/conveyor.db

.PHONY: run demo test check lint format bench fuzz fuzz-api fuzz-diff clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The service on the embedded engine, with the examples in its catalog, a local key and the
# example job service; stop it with Ctrl-C. The database stays in $(RUN_DB) between runs.
run: $(VENV)/.installed
	$(BIN)/conveyor serve --port $(PORT) --db $(RUN_DB) --pipelines examples \
		--local-key --demo-service

# The event-driven example run once from the CLI, against the example job service.
demo: $(VENV)/.installed
	$(BIN)/python -m conveyor.demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

check: lint test

# Every system: Conveyor embedded and on Temporal, hand-written Temporal, Prefect 3, DBOS (each
# peer installed into bench/.peers/ on first use). BENCH_ARGS adds options, e.g. --quick.
BENCH_ARGS ?=
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench --peers $(if $(ONLY),--only $(ONLY),) $(BENCH_ARGS)

# Both fuzzers, with larger budgets than `make test` gives them.
fuzz: fuzz-api fuzz-diff

# Schemathesis against the HTTP service on loopback (CONVEYOR_FUZZ_EXAMPLES examples per
# operation and mode).
fuzz-api: $(VENV)/.installed-dev
	CONVEYOR_FUZZ_EXAMPLES=$${CONVEYOR_FUZZ_EXAMPLES:-500} $(BIN)/python -m pytest \
		tests/api/test_schemathesis.py --timeout 3600 -q

# Random pipelines run on every backend and compared step by step: CONVEYOR_DIFF_SEEDS seeds
# from CONVEYOR_DIFF_FIRST_SEED (`make test` runs a fixed few).
fuzz-diff: $(VENV)/.installed-dev
	CONVEYOR_DIFF_SEEDS=$${CONVEYOR_DIFF_SEEDS:-200} $(BIN)/python -m pytest \
		tests/temporal/test_differential.py --timeout 600 -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
