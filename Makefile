# MeterIT: the two commands are `make demo` and `make test`; the rest are their parts.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv test lint typecheck pytest demo docs bench clean deb image test-appliance oci test-oci \
	lint-provision test-provision \
	disk-image test-disk-image

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
	$(PY) docs/configuration.py > docs/configuration.md

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

## make oci: the appliance as an OCI image (buildah, from the same rootfs) into build/image
oci: image
	packaging/image/build-oci $(IMAGE_DIR)/meterit-appliance-rootfs.tar.gz $(IMAGE_DIR)

## make test-oci: boot the OCI image with podman (systemd as PID 1) and check it from outside
test-oci: oci
	packaging/image/oci-test $(IMAGE_DIR)/meterit-appliance-oci.tar

## make lint-provision: ansible-lint (production profile), the playbook's syntax, the Vagrantfile
lint-provision:
	cd ansible && ansible-lint --profile production --strict
	cd ansible && ansible-playbook --syntax-check -i inventories/example/hosts.yml site.yml
	VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate

## make test-provision: converge two nspawn containers with ansible/site.yml, twice (changed=0), verify, purge, again
test-provision: lint-provision image
	ansible/converge-test $(DEB_DIR)

## make disk-image: the flashable UEFI/GPT disk image (.img.zst + .sha256) from the same rootfs
DISK_IMAGE_DIR ?= build/disk-image
disk-image: image
	packaging/image/build-disk-image $(IMAGE_DIR) $(DISK_IMAGE_DIR)

## make test-disk-image: boot the disk image under qemu + OVMF and check it from outside
test-disk-image: disk-image $(STAMP)
	VENV=$(VENV) packaging/image/disk-boot-test $(DISK_IMAGE_DIR)/meterit-appliance.img.zst

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
