# Two commands do everything on a fresh machine (Python 3.11 on PATH):
#   make study   - set up .venv and run the default study (`dvc repro` of params.yaml)
#   make test    - set up .venv, run ruff and mypy, then the tests (all of them: what CI runs)
#   make test-fast - the inner loop: the tests but the end-to-end (`slow`) and Ray (`ray`) ones, no lint
# make study PROFILE=configs/controls.yaml runs another profile as a DVC experiment (`dvc exp run --temp`, its
# values set with -S): params.yaml and the working tree stay as they are (autos.pipeline.profile).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_ENABLE_ASYNC_LOGGING := false

.PHONY: setup study test test-fast lint bench mlflow-ui clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

study: $(STAMP)
ifdef PROFILE
	$(BIN)/python -m autos.pipeline.profile "$(PROFILE)"
else
	dvc repro
endif

test: lint
	$(BIN)/python -m pytest -q

# No ruff/mypy here (~20 s; `make lint` or `make test` runs them): this loop is for the tests alone.
# More pytest arguments: make test-fast ARGS="tests/test_api.py --durations=10"
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not ray" $(ARGS)

# Static checks run by `make test` (and so by CI): ruff (lint + import order) and mypy (src/autos, pyproject).
lint: $(STAMP)
	$(BIN)/ruff check src stages tests bench tools
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

mlflow-ui: $(STAMP)
	$(BIN)/python -m autos.tracking.orphans  # closes the runs a SIGKILLed stage left RUNNING
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf data reports metrics mlflow.db mlartifacts
