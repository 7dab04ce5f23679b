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
	$(BIN)/visual-priors suite run experiments/quickstart.py --root $(ROOT) --workers 2

# Whole test files on two processes: a file's module fixtures (the micro study) run once.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -n 2 --dist loadfile

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(ROOT)
