# Spine: `make demo` and `make test` each set up everything they need on a fresh Debian 12 / Raspberry Pi OS
# machine (system packages, .venv, the package, the models), then run.

SHELL := /bin/bash
VENV := .venv
SPINE := $(VENV)/bin/spine
# Models come from a local mirror when there is one (air-gapped machines, CI), else from upstream.
MIRROR ?= $(firstword $(wildcard ../shared/models))
MODELS_DIR ?= $(HOME)/.local/share/spine/models
export SPINE_MODELS_DIR := $(MODELS_DIR)

.PHONY: setup models demo demo-wall test test-fast lint diagram clean install uninstall bundle

setup:
	bash scripts/setup.sh

models: setup
	$(SPINE) models fetch $(if $(MIRROR),--mirror $(MIRROR))

demo: models
	$(SPINE) demo --out out/demo

demo-wall: models
	$(SPINE) demo --out out/demo-wall --clock wall

test: models
	bash scripts/test.sh

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check device tests
	$(VENV)/bin/ruff format --check device tests
	$(VENV)/bin/mypy

diagram: setup
	$(VENV)/bin/python scripts/update_readme_diagram.py

# The service on this machine (as root; see README "On a Raspberry Pi"). BUNDLE=FILE installs offline from it.
install:
	scripts/install $(if $(BUNDLE),--bundle $(BUNDLE),$(if $(MIRROR),--models $(MIRROR)))

# PURGE=1 also removes /etc/spine, /var/lib/spine and the spine user.
uninstall:
	scripts/uninstall $(if $(PURGE),--purge)

# An offline install bundle for ARCH (aarch64 by default: a Raspberry Pi 4/5 or a Jetson) and the device's Debian
# RELEASE (trixie by default: Raspberry Pi OS from 2025-10; bookworm before) in out/.
ARCH ?= aarch64
RELEASE ?= trixie
bundle: setup
	scripts/bundle --release $(RELEASE) --arch $(ARCH) $(if $(MIRROR),--models $(MIRROR))

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
