# Two set-up commands: `make install` then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0

.PHONY: install test lint typecheck unit bench clean

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of PyTorch first: an unpinned torch would pull gigabytes of CUDA packages.
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[dev]"

test: lint typecheck unit

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(BIN)/mypy

# Tests run in parallel processes (pytest-xdist), one per core up to 4; each uses one torch
# thread (tests/conftest.py), so they never fight over cores.
unit:
	$(BIN)/python -m pytest -q --numprocesses auto --maxprocesses 4 -m "not alone"
	# Latency tests (marked alone) afterwards, on cores no other test is using.
	$(BIN)/python -m pytest -q -p no:xdist -m alone

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
