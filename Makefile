# Development entry points. `make demo` and `make test` are the README's two commands:
# each creates .venv (if missing) with the CPU build of torch, installs detloss, and runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --constraint constraints-cpu.txt

.PHONY: venv install-cli install-ablate install-test demo ablate test lint typecheck pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python

install-cli: venv
	$(PIP) torch==2.13.0
	$(PIP) -e ".[cli]"

install-ablate: venv
	$(PIP) torch==2.13.0
	$(PIP) -e ".[ablate]"

install-test: venv
	$(PIP) torch==2.13.0
	$(PIP) -e ".[cli,bench,test]"

demo: install-cli
	$(BIN)/detloss simulate

ablate: install-ablate
	$(BIN)/detloss ablate

lint:
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest

test: install-test lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
