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

# Whole test files on two processes: a file's module fixtures (the micro study) run once. One
# XLA compilation cache for the whole session (its test processes and the study workers they
# start), emptied first: the many tiny studies compile the same programs.
TEST_CACHE := .test-jax-cache
TEST_ENV := JAX_COMPILATION_CACHE_DIR=$(abspath $(TEST_CACHE)) JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.5

test: $(STAMP)
	rm -rf $(TEST_CACHE)
	$(TEST_ENV) $(BIN)/python -m pytest -m "not slow" -q -n 2 --dist loadfile

test-all: $(STAMP)
	rm -rf $(TEST_CACHE)
	$(TEST_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(ROOT) $(TEST_CACHE)
