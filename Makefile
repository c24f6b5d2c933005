# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; a bare "torch" requirement could pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: install run test lint clean

$(BIN)/archprof: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test,plot,hf,notebook]'
	touch $@

install: $(BIN)/archprof

run: install
	$(BIN)/archprof compare mobilenet_v1 mobilenet_v2

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
