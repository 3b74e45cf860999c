# The README's two commands:
#   make demo   set up the environment if missing, then run the whole notebook series on the demo profile
#   make test   set up the environment if missing, then lint and run the tests (notebooks included)
# Everything runs inside .venv (created with the system python3; pip, not uv: see README "Environment").

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= demo

.PHONY: setup demo scenes full test test-fast lint bench clean-runs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c constraints.txt -e '.[all]'
	touch $@

demo: setup
	$(PY) -m sed_utils run --profile demo

# real ESC-50 only (no DESED): the held-out fold's scenes are the test set (README, "Three profiles")
scenes: setup
	$(PY) -m sed_utils run --profile scenes

full: setup
	$(PY) -m sed_utils run --profile full

lint: setup
	$(PY) -m ruff check .

# -rs: pytest says why a test was skipped (the browser test names what is missing)
test: lint
	$(PY) -m pytest -q -rs

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/run.py

clean-runs:
	rm -rf runs/$(PROFILE)
