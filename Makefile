# MeterIT: the two commands are `make demo` and `make test`; the rest are their parts.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv test lint typecheck pytest demo docs bench clean deb image test-appliance

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
	$(PY) -m demo

## make deb: the Debian packages (meterit-common, -appliance, -central) into build/deb, lintian-checked
DEB_DIR ?= build/deb
IMAGE_DIR ?= build/image
deb:
	packaging/build-deb $(DEB_DIR)

## make image: the appliance rootfs tarball (debootstrap base cached in build/image/cache)
image: deb
	packaging/image/build-image $(DEB_DIR) $(IMAGE_DIR)

## make test-appliance: boot the image under systemd-nspawn and check it from outside
test-appliance: image $(STAMP)
	VENV=$(VENV) packaging/image/boot-test $(IMAGE_DIR)/meterit-appliance-rootfs.tar.gz

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
