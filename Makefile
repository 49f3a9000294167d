# Two commands do all the set-up on a fresh machine (see README):
#   make demo   -> creates .venv, installs the pinned toolchain, runs the main job on embedded defaults
#   make test   -> creates .venv if needed, runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==26.3 setuptools==84.2.1 wheel==0.48.0
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/oace demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
