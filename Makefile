# The two set-up commands (see README): `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test bench chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default (a synthetic city in EMT's raw formats, Sep 2018): the
## nightly run of 27 Sep, planning the 28th; it prints where the plan and the report are.
NIGHTLY_DATE ?= 2018-09-27
run: $(STAMP)
	$(BIN)/bicimad nightly --date $(NIGHTLY_DATE) --config pipelines/nightly.toml

## Debian's Chromium and ChromeDriver, for the report's browser test: installed when missing and
## running as root; otherwise that test skips with a reason.
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	     || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)); \
	  else echo "chromium/chromedriver missing (not root): the browser test will be skipped"; fi; fi

## The default test suite: the linter, then pytest (slow and benchmark tests are deselected; see
## pyproject.toml). pytest's exit code 5 (no tests collected) fails the target like any other.
test: $(STAMP) chromium
	$(BIN)/ruff check bicimad tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Benchmarks (recorded in BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/python -m pytest -m bench tests/bench $(PYTEST_ARGS)
