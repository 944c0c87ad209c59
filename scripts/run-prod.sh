#!/usr/bin/env bash
# `make run-prod`: the app's production profile on this machine (scripts/run_prod.py).
# Installs PostgreSQL, Redis and nginx first when they are missing (as root, with apt).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-servers.sh postgresql redis-server nginx
exec "${VENV:-.venv}/bin/python" scripts/run_prod.py "$@"
