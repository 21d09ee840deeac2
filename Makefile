# pico-llm: `make repro` runs the pipeline, `make test` runs the tests. Both install into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
# TORCH=cpu installs PyTorch's CPU-only build from PyTorch's own index (Linux; docs/install.md).
# Unset, torch is what the package index serves for the platform: on Linux the CUDA build.
TORCH ?=
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
PIP = $(VENV)/bin/pip
ifneq ($(filter-out cpu,$(TORCH)),)
$(error TORCH=$(TORCH) is not a choice: leave TORCH unset for the index's default build, or TORCH=cpu)
endif
# Stages run `python`, `dvc` and `torchrun` from the venv, and DVC never phones home.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install repro test test-fast lint smoke check-install clean-venv

install: $(STAMP)

# requirements.lock is a universal lock (uv, every platform's pins behind environment markers) used
# as constraints: pip installs what pyproject.toml asks for, with its dependencies, at the locked
# versions. So the CUDA libraries come only with a torch wheel that needs them, and a pre-seeded
# torch 2.13.0+cpu satisfies torch==2.13.0 with none. The locked pip and setuptools come first
# (pyproject.toml's bootstrap group says why); openai-whisper comes last and alone
# (requirements-nodeps.txt says why). PYTHONWARNINGS hides setuptools' boxed notice that an
# editable install can be shadowed by same-named folders, which newer pips print even when quiet.
$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c requirements.lock pip setuptools
ifeq ($(TORCH),cpu)
	$(PIP) install --quiet --no-deps --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)+cpu"
endif
	PYTHONWARNINGS='ignore:Editable installation' $(PIP) install --quiet -c requirements.lock --no-build-isolation -e '.[test]'
	$(PIP) install --quiet --no-deps --no-build-isolation -r requirements-nodeps.txt
	touch $@

TORCH_VERSION = $(shell sed -n 's/^torch==\([^ ;]*\).*/\1/p' requirements.lock)

# DVC keeps the lock entries of stages that are gone; scripts/prune_lock.py drops them.
repro: $(STAMP)
	dvc repro
	python scripts/prune_lock.py

# Two workers: tests/conftest.py keeps every module of the smoke repository on one of them.
test: $(STAMP)
	pytest -q -n 2

# The unit layer: every test not marked `slow` (no real pipeline, no long training); about a minute.
test-fast: $(STAMP)
	pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	ruff check picollm stages tests scripts

# The tiny profile the tests use, run in place of the default (restores params.yaml after).
smoke: $(STAMP)
	picollm profile run smoke

# A real user's install, checked: a fresh venv in a temp folder, only the standard package index
# (no pip configuration), then torch, one smoke training step, tests/test_models.py, and the lock's
# resolution for macOS and Windows. Slow (the CUDA wheels, GBs): not part of `make test`.
check-install:
	bash scripts/check_install.sh

clean-venv:
	rm -rf $(VENV)
