# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SRC := src tests bench
API_PORT ?= 8000
UI_PORT ?= 8501
CHROMIUM ?= /usr/bin/chromium

.PHONY: install run api ui test lint typecheck pytest browser bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24,<27"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The API on 127.0.0.1:8000 (embedded SQLite registry under var/; on first start it imports
# the bundled sample and trains the default model) and the UI on 127.0.0.1:8501 beside it.
# Ctrl-C stops both.
run: install
	@trap 'kill 0' INT TERM EXIT; \
	MUSICREC_API_URL=http://127.0.0.1:$(API_PORT) $(BIN)/musicrec ui --port $(UI_PORT) & \
	echo "UI on http://127.0.0.1:$(UI_PORT), API on http://127.0.0.1:$(API_PORT)"; \
	$(BIN)/musicrec serve --host 127.0.0.1 --port $(API_PORT)

api: install
	$(BIN)/musicrec serve --host 127.0.0.1 --port $(API_PORT)

ui: install
	MUSICREC_API_URL=http://127.0.0.1:$(API_PORT) $(BIN)/musicrec ui --port $(UI_PORT)

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck: install
	$(BIN)/mypy src

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
# Without root it is skipped with a note; the browser tests then skip locally (CI fails them).
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
	  else echo "note: $(CHROMIUM) missing and no root for apt-get: browser tests will skip"; fi; }

pytest: install browser
	$(BIN)/pytest

test: lint typecheck pytest

# wrk is the load generator of the serving benchmark (the script falls back to httpx).
bench: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || true
	$(BIN)/python -m bench.run_all --scale $(or $(SCALE),1.0)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache test-artifacts
