# Two commands do everything: `make demo` and `make test`. Both create the environment first if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.causalrec-installed
# The CPU wheel of torch; a GPU user overrides these (README, "GPU users").
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export CAUSALREC_DATA_DIR ?= $(DATA_DIR)

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install --quiet -e ".[dev,text]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/causalrec demo --out reports/demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check causalrec tests benchmarks

bench: setup
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) reports .pytest_cache
