# The two commands of the README: `make run` and `make test`. Everything else is for developers.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOME_DIR ?= var
SOURCES  := filetyping synapse_module coordination ror_sync azurezo_cli coordination_bot

.PHONY: run test test-workers system-deps e2e-deps lint typecheck check clean bench-import bench-invite bench-service bench-bot bench-whoami bench-files bench-indicators bench-agenda bench-notify bench-load

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

# Debian packages of the production topology: nginx (reverse proxy of `azurezo up --workers`) and
# coturn (TURN for calls; its turnutils_uclient allocates a relay in tests/integration/test_turn.py).
system-deps:
	@{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 && command -v turnserver >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 nginx coturn; }

# The single sign-on tests run a real OpenID Connect provider on Node.js (tests/support/oidc).
tests/support/oidc/node_modules/.package-lock.json: tests/support/oidc/package-lock.json
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	npm ci --silent --no-audit --no-fund --prefix tests/support/oidc

# The dashboard's browser tests (tests/e2e) drive Debian's chromium with Playwright, and inject axe-core
# (npm) into each page. Installed here where missing; where they cannot be installed (no root, no
# registry) the tests skip and say so.
E2E_NODE := build/e2e-node
AXE      := $(E2E_NODE)/node_modules/axe-core/axe.min.js

$(AXE):
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq npm; } || true
	-npm install --silent --no-audit --no-fund --prefix $(E2E_NODE) axe-core@4

e2e-deps: $(AXE)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || echo "Chromium n'a pas pu être installé : les tests de navigateur du tableau de bord seront sautés."

# curl runs the README's session (tests/integration/test_cli_readme.py).
test: .stamp-install-test system-deps e2e-deps tests/support/oidc/node_modules/.package-lock.json
	@command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl; }
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The integration suite again with Synapse as in `azurezo up --workers` (PostgreSQL + Redis +
# nginx): the Synapse module tests, the TURN test and the bot's E2EE tests, through the proxy.
# (`azurezo up` without workers, test_cli_up/test_cli_readme, already ran in the other passes.)
WORKERS_TESTS ?= tests/integration tests/coordination_bot/test_bot_e2ee.py \
	--ignore=tests/integration/test_cli_up.py --ignore=tests/integration/test_cli_readme.py
AZUREZO_TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432
test-workers: .stamp-install-test system-deps tests/support/oidc/node_modules/.package-lock.json
	AZUREZO_TEST_WORKERS=1 AZUREZO_TEST_POSTGRES_URL=$(AZUREZO_TEST_POSTGRES_URL) \
		$(BIN)/python -m pytest -m synapse $(WORKERS_TESTS) $(PYTEST_ARGS)

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

bench-indicators: .stamp-install-test
	$(BIN)/python bench/bench_indicators.py $(BENCH_ARGS)

bench-bot: .stamp-install-test
	$(BIN)/python bench/bench_bot.py $(BENCH_ARGS)

# The image's pinned dependencies: what this virtualenv runs (and CI tested).
requirements.lock: pyproject.toml .stamp-install
	$(BIN)/python tools/lock_requirements.py > $@

bench-files: .stamp-install-test
	$(BIN)/python bench/bench_files.py $(BENCH_ARGS)
bench-agenda: .stamp-install-test
	$(BIN)/python bench/bench_agenda.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_agenda.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_agenda $(BENCH_ARGS)
bench-notify: .stamp-install-test
	$(BIN)/python bench/bench_notify.py $(BENCH_ARGS)
# 1,000 simulated professionals (Locust) on `azurezo up --workers` (PostgreSQL + Redis + nginx), then on
# the single-process SQLite default; BENCH_ARGS='--users 50 --minutes 1' for a short look.
.stamp-install-bench: .stamp-install-test
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@
bench-load: .stamp-install-bench system-deps
	$(BIN)/python bench/bench_load.py $(BENCH_ARGS)

clean:
	rm -rf .stamp-install .stamp-install-test build *.egg-info
