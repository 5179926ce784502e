# The two commands of the README: `make run` and `make test`. Everything else is for developers.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOME_DIR ?= var
SOURCES  := filetyping synapse_module coordination ror_sync azurezo_cli coordination_bot

.PHONY: run test lint typecheck check clean bench-import bench-invite bench-service bench-bot bench-whoami bench-notify

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 est requis ($(PYTHON) introuvable)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when pyproject.toml changes or a top-level package appears (the editable install
# maps each top-level package when it is installed).
PACKAGE_MARKERS := $(wildcard */__init__.py)

.stamp-install: pyproject.toml $(PACKAGE_MARKERS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

.stamp-install-test: pyproject.toml $(PACKAGE_MARKERS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ .stamp-install

run: .stamp-install
	$(BIN)/azurezo --home $(HOME_DIR) up

# curl runs the README's session (tests/integration/test_cli_readme.py).
test: .stamp-install-test
	@command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl; }
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: .stamp-install-test
	$(BIN)/ruff check $(SOURCES) tests bench
	$(BIN)/ruff format --check $(SOURCES) tests bench
	$(BIN)/lint-imports --no-cache

typecheck: .stamp-install-test
	$(BIN)/mypy $(SOURCES)

check: lint typecheck test

# Benchmarks (never part of `make test`); figures and how to read them: bench/README.md.
bench-import: .stamp-install-test
	@command -v sqlite3 >/dev/null && command -v psql >/dev/null && test -x /usr/bin/time || { apt-get update -qq && apt-get install -y -qq sqlite3 time postgresql-client; }
	$(BIN)/python bench/bench_import.py $(BENCH_ARGS)

bench-invite: .stamp-install-test
	$(BIN)/python bench/bench_invite.py $(BENCH_ARGS)

bench-service: .stamp-install-test
	$(BIN)/python bench/bench_service.py $(BENCH_ARGS)

bench-whoami: .stamp-install-test
	$(BIN)/python bench/bench_whoami.py $(BENCH_ARGS)

bench-bot: .stamp-install-test
	$(BIN)/python bench/bench_bot.py $(BENCH_ARGS)

bench-notify: .stamp-install-test
	$(BIN)/python bench/bench_notify.py $(BENCH_ARGS)

clean:
	rm -rf .stamp-install .stamp-install-test build *.egg-info
