#!/usr/bin/env bash
# Create the virtualenv at $1 with a Python >= 3.11, installing venv support on Debian/Ubuntu.
set -euo pipefail
venv=${1:-.venv}
[ -x "$venv/bin/python" ] && exit 0

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$(command -v "$candidate"); break
  fi
done
if [ -z "$python" ]; then
  echo "tenfold needs Python >= 3.11: install python3 (Debian 12 / Ubuntu 24.04 ship one)." >&2
  exit 1
fi

if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    ver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" || \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    "$python" -m venv "$venv"
  else
    echo "python -m venv failed: install your distribution's venv package (python3-venv)." >&2
    exit 1
  fi
fi
