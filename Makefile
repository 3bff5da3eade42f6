# Two entry points for a fresh machine: `make bench` (the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 1

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,cluster,ipopt]"
	touch $@

.PHONY: bench test lint
# Writes bench-runs/quick/ (git-ignored); run again to continue an interrupted run.
bench: $(VENV)/.installed
	$(VENV)/bin/trm-rl bench --preset quick --resume

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
