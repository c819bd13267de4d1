# Two commands on a fresh machine: `make demo` (the main job on the embedded
# default) and `make test`. Both create .venv and install what is missing,
# and reuse it otherwise.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint install serve-install clean-cache bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vfm demo

# Lint, format check and type check first (seconds), then the suite.
test: lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/mae_throughput.py --sizes tiny base --precisions fp32 bf16

clean-cache:
	rm -rf $${VFM_CACHE_DIR:-$$HOME/.cache/vfm}
