# The two set-up commands (see README): `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default (a synthetic city in EMT's raw formats).
run: $(STAMP)
	$(BIN)/bicimad ingest --synthetic
	$(BIN)/bicimad data summary

## The default test suite (slow and benchmark tests are deselected; see pyproject.toml).
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Benchmarks (recorded in BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/python -m pytest -m bench tests/bench $(PYTEST_ARGS)
