# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SRC := src tests bench

.PHONY: install run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The API on 127.0.0.1:8000 with the embedded SQLite registry under var/; on first start it
# imports the bundled sample and trains the default model, so /predict answers at once.
run: install
	$(BIN)/musicrec serve --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck: install
	$(BIN)/mypy src

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/run_all.py --scale $(or $(SCALE),1.0)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
