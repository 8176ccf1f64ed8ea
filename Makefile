# Two commands do everything on a fresh machine with Python 3.11:
#   make run    the chaos run (default catalogue, embedded store)
#   make test   the test suite (needs PostgreSQL: see README)
PYTHON ?= python3.11
VENV   := .venv
UV_VERSION := 0.13.9
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.synced
ARGS   ?=

.PHONY: run test lint fmt bench bytecode reference-report reference-check clean

$(STAMP): pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --all-extras --group dev --compile-bytecode
	@touch $(STAMP)

# Byte-compile our sources up front: where PYTHONDONTWRITEBYTECODE is set (it is on the CI
# machines), every process would otherwise recompile every module it imports (~1.5 s each).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 reliability harness scenarios tests benchmarks loadtests >/dev/null

run: bytecode
	$(BIN)/reliability-harness chaos $(ARGS)

test: bytecode
	$(BIN)/python -m pytest -n auto $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check reliability harness scenarios tests loadtests benchmarks
	$(BIN)/ruff format --check reliability harness scenarios tests loadtests benchmarks
	$(BIN)/mypy --strict reliability harness

fmt: $(STAMP)
	$(BIN)/ruff format reliability harness scenarios tests loadtests benchmarks
	$(BIN)/ruff check --fix reliability harness scenarios tests loadtests benchmarks

bench: bytecode
	$(BIN)/python -m benchmarks $(ARGS)

# The published reference report: the default catalogue with seed 1.
REFERENCE_CHAOS := out/reference-chaos

reference-report: bytecode
	$(BIN)/reliability-harness chaos --seed 1 --out $(REFERENCE_CHAOS) --quiet
	$(BIN)/reliability-harness report $(REFERENCE_CHAOS) --out reports/reference

# Regenerate and compare with the committed report (only generation time/environment may differ).
reference-check: bytecode
	$(BIN)/reliability-harness chaos --seed 1 --out $(REFERENCE_CHAOS) --quiet
	$(BIN)/reliability-harness report $(REFERENCE_CHAOS) --check reports/reference

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
