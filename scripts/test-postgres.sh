#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: `start` (idempotent) prints nothing and leaves a
# server on 127.0.0.1:$SHOAL_TEST_PG_PORT (default 54329) with a database `shoal_test` that user
# `shoal` reaches without a password; `stop` ends it; `running` exits 0 when it is up. Data lives in $SHOAL_TEST_PG_DIR.
# PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
set -euo pipefail
dir=${SHOAL_TEST_PG_DIR:-/tmp/shoal-test-postgres}
port=${SHOAL_TEST_PG_PORT:-54329}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ]; then
  echo "PostgreSQL is not installed (apt-get install postgresql; make deps does)" >&2
  exit 1
fi
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
  start)
    if as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then exit 0; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir" -U shoal --auth=trust -E UTF8 >/dev/null
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U shoal shoal_test
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
  running)
    as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1
    ;;
  url)
    echo "postgres://shoal@127.0.0.1:$port/shoal_test"
    ;;
  *)
    echo "usage: $0 start|stop|running|url" >&2
    exit 2
    ;;
esac
