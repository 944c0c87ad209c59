# The README's two commands: `make run` and `make test`. Each sets itself up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tenfold-installed

.PHONY: run test lint format servers bench lock clean

run: $(STAMP)
	$(VENV)/bin/tenfold run --app apps.hello.main:app

test: $(STAMP) servers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# PostgreSQL 15+, Redis 7+, pgbouncer, promtool and wrk for the harness and benchmarks.
servers:
	@bash scripts/ensure-servers.sh

bench: $(STAMP) servers
	$(PY) -m benchmarks

$(STAMP): pyproject.toml requirements.lock
	@bash scripts/ensure-python.sh "$(VENV)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Re-pin requirements.lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra otel --extra sentry \
		--extra msgpack --extra bench --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
