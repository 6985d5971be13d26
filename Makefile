# MeterIT: the two commands are `make demo` and `make test`; the rest are their parts.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv test lint typecheck pytest demo docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

## make test: create the venv, install, then lint, type checks and the whole test suite
test: lint typecheck pytest

## make docs: regenerate the configuration reference from the settings declarations
docs: $(STAMP)
	$(PY) -m common.docs > docs/configuration.md

demo: $(STAMP)
	$(VENV)/bin/meterit-central demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
