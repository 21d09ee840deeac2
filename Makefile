# pico-llm: `make repro` runs the pipeline, `make test` runs the tests. Both install into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
# Stages run `python`, `dvc` and `torchrun` from the venv, and DVC never phones home.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install repro test smoke clean-venv

install: $(STAMP)

# requirements.lock pins every package (pip freeze). --no-deps installs exactly that set: it keeps
# openai-whisper (wanted only for its gpt2.tiktoken file) from pulling numba and triton, and
# torch==2.13.0 resolves to the CPU wheel on these machines.
$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-deps -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	pytest -q

# The tiny profile the tests use, run in place of the default (restores params.yaml after).
smoke: $(STAMP)
	picollm profile run smoke

clean-venv:
	rm -rf $(VENV)
