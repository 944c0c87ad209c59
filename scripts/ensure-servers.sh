#!/usr/bin/env bash
# Make sure the server binaries the test harness starts are installed:
# PostgreSQL >= 15 (initdb, pg_ctl, pg_basebackup), Redis >= 7, pgbouncer, RabbitMQ,
# promtool, wrk, node (the browser client's checks), nginx (`make run-prod` and its test) and
# chromium (the browser tests, driven by Playwright with executable_path=/usr/bin/chromium:
# Playwright's own browser download is not used).
# With arguments (package names: postgresql redis-server nginx ...), only those.
# On Debian/Ubuntu as root, installs what is missing with apt; elsewhere lists it and fails.
set -euo pipefail

missing=()
wanted=" ${*:-postgresql redis-server pgbouncer rabbitmq-server prometheus wrk nodejs nginx chromium} "
want() { [[ $wanted == *" $1 "* ]]; }

pg_ok() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    local ver=${bin#/usr/lib/postgresql/}; ver=${ver%%/*}
    if [ "${ver%%.*}" -ge 15 ] 2>/dev/null && [ -x "$bin/initdb" ] && [ -x "$bin/pg_basebackup" ]; then
      return 0
    fi
  done
  return 1
}
redis_ok() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || return 1
  local v; v=$(redis-server --version | sed -n 's/.*v=\([0-9]*\).*/\1/p')
  [ "${v:-0}" -ge 7 ]
}
rabbitmq_ok() {
  # The harness runs the start script itself (Debian's /usr/sbin one switches user).
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null
}

nginx_ok() {
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]
}

want postgresql && { pg_ok || missing+=(postgresql); }
want redis-server && { redis_ok || missing+=(redis-server); }
want pgbouncer && { command -v pgbouncer >/dev/null || missing+=(pgbouncer); }
want rabbitmq-server && { rabbitmq_ok || missing+=(rabbitmq-server); }
want prometheus && { command -v promtool >/dev/null || missing+=(prometheus); }
want wrk && { command -v wrk >/dev/null || missing+=(wrk); }
want nodejs && { command -v node >/dev/null || missing+=(nodejs); }
want nginx && { nginx_ok || missing+=(nginx); }
want chromium && { [ -x /usr/bin/chromium ] || missing+=(chromium); }

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # Debian's postgresql/redis/rabbitmq/nginx packages try to start services; the harness
  # and `make run-prod` start their own beside them, on their own ports.
  # Another apt run (a second helper, unattended upgrades) holds the lock for a while: wait.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
  if want postgresql && ! pg_ok; then
    echo "PostgreSQL >= 15 is still missing after apt-get install" >&2; exit 1
  fi
  if want redis-server && ! redis_ok; then
    echo "Redis >= 7 is still missing after apt-get install" >&2; exit 1
  fi
  if want nginx && ! nginx_ok; then
    echo "nginx is still missing after apt-get install" >&2; exit 1
  fi
  exit 0
fi

cat >&2 <<MSG
These server binaries are needed and missing: ${missing[*]}
Install them with your package manager, e.g. on Debian/Ubuntu:
  sudo apt-get install ${missing[*]}
(PostgreSQL >= 15 and Redis >= 7.)
MSG
exit 1
