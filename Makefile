# Two commands do everything on a fresh machine (Python 3.11 on PATH):
#   make study   - set up .venv and run the default study (`dvc repro` of params.yaml)
#   make test    - set up .venv, run ruff and mypy, then the tests
# PROFILE=configs/smoke.yaml make study runs another profile (copied over params.yaml first).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: setup study test lint bench mlflow-ui clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

study: $(STAMP)
	@if [ -n "$(PROFILE)" ]; then cp "$(PROFILE)" params.yaml; fi
	dvc repro

test: lint
	$(BIN)/python -m pytest -q

# Static checks run by `make test` (and so by CI): ruff (lint + import order) and mypy (src/autos, pyproject).
lint: $(STAMP)
	$(BIN)/ruff check src stages tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf data reports metrics mlflow.db mlartifacts
