# Two commands do everything on a fresh machine with Python 3.11:
#   make run    the chaos run (default catalogue, embedded store)
#   make test   the test suite (needs PostgreSQL: see README)
PYTHON ?= python3.11
VENV   := .venv
UV_VERSION := 0.13.9
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.synced
ARGS   ?=

.PHONY: run test lint fmt bench report serve clean

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --all-extras --group dev
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/reliability-harness chaos $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n auto $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check reliability harness scenarios tests loadtests
	$(BIN)/ruff format --check reliability harness scenarios tests loadtests
	$(BIN)/mypy --strict reliability harness

fmt: $(STAMP)
	$(BIN)/ruff format reliability harness scenarios tests loadtests
	$(BIN)/ruff check --fix reliability harness scenarios tests loadtests

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
