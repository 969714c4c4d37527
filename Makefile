# Spine: `make demo` and `make test` each set up everything they need on a fresh Debian 12 / Raspberry Pi OS
# machine (system packages, .venv, the package, the models), then run.

SHELL := /bin/bash
VENV := .venv
SPINE := $(VENV)/bin/spine
# Models come from a local mirror when there is one (air-gapped machines, CI), else from upstream.
MIRROR ?= $(firstword $(wildcard ../shared/models))
MODELS_DIR ?= $(HOME)/.local/share/spine/models
export SPINE_MODELS_DIR := $(MODELS_DIR)

.PHONY: setup models demo demo-wall test test-fast lint diagram clean

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

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
