# zooscope: two commands for a newcomer on a fresh Debian machine.
#   make study   set up .venv (pip) and the Fashion-MNIST package, then run the default study (dvc repro)
#   make test    the same set-up, then the test suite
#   make ui      a local Prefect server and its UI (127.0.0.1:4200);  make flow  the study through Prefect
#   make gpu-check  on a CUDA machine: the GPU paths against the CPU (EXTRAS=gpu,dev,flow,dask for faiss-gpu)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= cpu,dev,flow,dask
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
SUDO   := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: help setup data browser study test test-fast ui flow gpu-check clean

help:
	@sed -n '2,5p' Makefile

# Byte-compile site-packages once, on every core: pip's own compile step runs on one, and where
# PYTHONDONTWRITEBYTECODE is set (as on CI) nothing is cached later, so every stage process would compile
# torch, timm and DVC again (measured: +5 s per stage, +4.5 min on the default study). compileall exits
# non-zero for the few files in site-packages that are templates rather than Python; -qq keeps them quiet.
$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --no-compile -q -e '.[$(EXTRAS)]'
	-@$(BIN)/python -m compileall -qq -j0 $(VENV)/lib
	@touch $@

setup: $(STAMP) data

# Debian's dataset-fashion-mnist when apt is available; otherwise set dataset.root (see README)
data:
	@if [ ! -e $(FMNIST)/t10k-labels-idx1-ubyte.gz ] && [ ! -e $(FMNIST)/t10k-labels-idx1-ubyte ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing Debian's dataset-fashion-mnist"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else echo "no apt-get: point dataset.root in params.yaml at the Fashion-MNIST IDX files"; fi; \
	fi

study: setup
	$(BIN)/dvc repro
	@echo
	@$(BIN)/zooscope table

# The report's tests open it in headless Chromium (Debian's chromium), as a user's browser would
browser:
	@if ! command -v chromium >/dev/null; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (the report's browser tests)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	  else echo "no apt-get: install chromium, or the report's browser tests are skipped"; fi; \
	fi

test: setup browser
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

PREFECT_PORT ?= 4200
PREFECT_API ?= http://127.0.0.1:$(PREFECT_PORT)/api

# a local Prefect server (SQLite under ~/.prefect) bound to 127.0.0.1; stop it with Ctrl-C
ui: setup
	@echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)  (API $(PREFECT_API)); run 'make flow' in another shell"
	PREFECT_UI_API_URL=$(PREFECT_API) $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# the default study through the Prefect flow, against $$PREFECT_API_URL or the server 'make ui' started
flow: setup
	PREFECT_API_URL=$${PREFECT_API_URL:-$(PREFECT_API)} $(BIN)/python -m flows.study run --repo .
	@$(BIN)/zooscope table

# embed, k-NN and PGD on the GPU against the CPU in float32, with throughputs (bench/gpu_check.py); refuses without a GPU
gpu-check: setup
	$(BIN)/python bench/gpu_check.py --out gpu_check.json

clean:
	rm -rf artifacts metrics reports .dvc/tmp
