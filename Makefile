# Two commands for a fresh clone: `make demo` and `make test`. Both create and reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROOT ?= runs

.PHONY: demo test test-all venv clean

venv: $(STAMP)

# Reinstall only when the package metadata changes.
$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,xm]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/visual-priors suite run experiments/quickstart.py --root $(ROOT)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(ROOT)
