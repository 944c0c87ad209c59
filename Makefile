# The README's two commands: `make run` and `make test`. Each sets itself up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tenfold-installed
# The shipped code (tenfold, apps): every finding of medium severity or above, at any
# confidence. Exceptions are inline `# nosec BXXX` comments (docs/security.md, "Security gates").
BANDIT := $(VENV)/bin/bandit -c pyproject.toml --quiet --recursive --severity-level medium \
	tenfold apps

.PHONY: run run-prod test lint format servers bench lock clean

run: $(STAMP)
	@echo "Tourney on http://127.0.0.1:$${TENFOLD_PORT:-8000} : log in as host, red, blue, ... (password beer-olympics)"
	TENFOLD_TOURNEY__DEMO=true $(VENV)/bin/tenfold run --app apps.tourney.main:make_app

# The app's production profile on this machine: PostgreSQL primary + replica, Redis, a
# worker, two API processes and nginx on http://127.0.0.1:8080 (apps/tourney/README.md).
# APP=module:app to serve another app; RUN_PROD_* variables move ports and the data dir.
APP ?= apps.tourney.main:make_app
run-prod: $(STAMP)
	@VENV="$(VENV)" bash scripts/run-prod.sh --app "$(APP)"

test: $(STAMP) servers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(BANDIT)
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(BANDIT)

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# PostgreSQL 15+, Redis 7+, pgbouncer, RabbitMQ, promtool, wrk, node and nginx for the harness,
# the benchmarks and run-prod.
servers:
	@bash scripts/ensure-servers.sh

bench: $(STAMP) servers
	$(PY) -m benchmarks

# `python -m venv` seeds an old setuptools (65.5 on Python 3.11, CVE-2025-47273): the floor
# matches tests/security/test_versions.py. The Makefile is a prerequisite so that a change to
# these steps reaches an existing venv too.
$(STAMP): pyproject.toml requirements.lock Makefile
	@bash scripts/ensure-python.sh "$(VENV)"
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=78.1.1"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Re-pin requirements.lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra otel --extra sentry \
		--extra msgpack --extra apps --extra bench --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
