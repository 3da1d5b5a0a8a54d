# Every target creates/uses its own virtual environment: nothing relies on what happens to be
# installed. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test test-all lint demo clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check .

# Unit tests + the tiny end-to-end smoke test (pytest's exit code 5, "no tests", fails too).
test: install lint
	$(BIN)/pytest -q

# Everything, including tests marked slow.
test-all: install
	$(BIN)/pytest -q --run-slow

# The whole pipeline on the tiny data in data/ (prepare -> ... -> WER), printing an E1 table.
demo: install
	PATH="$(abspath $(BIN)):$$PATH" bash recipes/tiny/run.sh

clean:
	rm -rf $(VENV) exp/tiny
