#!/usr/bin/env bash
# Make sure the server binaries the test harness starts are installed:
# PostgreSQL >= 15 (initdb, pg_ctl, pg_basebackup), Redis >= 7, pgbouncer, RabbitMQ,
# promtool, wrk, node (the browser client's checks) and chromium (the browser tests, driven by
# Playwright with executable_path=/usr/bin/chromium: Playwright's own browser download is not used).
# On Debian/Ubuntu as root, installs what is missing with apt; elsewhere lists it and fails.
set -euo pipefail

missing=()

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

pg_ok || missing+=(postgresql)
redis_ok || missing+=(redis-server)
command -v pgbouncer >/dev/null || missing+=(pgbouncer)
rabbitmq_ok || missing+=(rabbitmq-server)
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
command -v node >/dev/null || missing+=(nodejs)
[ -x /usr/bin/chromium ] || missing+=(chromium)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # Debian's postgresql/redis/rabbitmq packages try to start services; the harness
  # starts its own nodes beside them.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  pg_ok || { echo "PostgreSQL >= 15 is still missing after apt-get install" >&2; exit 1; }
  redis_ok || { echo "Redis >= 7 is still missing after apt-get install" >&2; exit 1; }
  exit 0
fi

cat >&2 <<MSG
The test harness needs these server binaries, which are missing: ${missing[*]}
Install them with your package manager, e.g. on Debian/Ubuntu:
  sudo apt-get install postgresql redis-server pgbouncer rabbitmq-server prometheus wrk nodejs chromium
(PostgreSQL >= 15 and Redis >= 7.)
MSG
exit 1
