# The few commands people run. Both set-up commands start from nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKSPACE ?= .

.PHONY: run test lint bench dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt requirements-agent-framework.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt -r requirements-agent-framework.txt
	touch $@

## Install and open the app on the bundled use cases, offline, no API keys needed.
run: $(VENV)/.installed
	$(BIN)/llmops-tui --workspace $(WORKSPACE)

## Install and run the whole test suite (lint, format, import contracts, types, tests).
test: $(VENV)/.installed
	$(BIN)/ruff check llmops_tui tests benchmarks
	$(BIN)/ruff format --check llmops_tui tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -p no:cacheprovider

lint: $(VENV)/.installed
	$(BIN)/ruff check llmops_tui tests benchmarks
	$(BIN)/ruff format --check llmops_tui tests benchmarks

bench: $(VENV)/.installed
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

## Build the wheel and sdist into dist/ and check their metadata (then: pytest -m dist, the release check).
dist: $(VENV)/.installed
	rm -rf dist build
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*
	rm -rf build llmops_tui.egg-info

clean:
	rm -rf $(VENV) .llmops dist build
