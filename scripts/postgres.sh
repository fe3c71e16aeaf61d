#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: initdb in a temp dir, listening only on a Unix socket in it,
# fsync and synchronous_commit on. Used by scripts/test.sh; by hand:
#   eval "$(scripts/postgres.sh start)"   # prints the exports: MLHOOK_TEST_DATABASE_URL, MLHOOK_TEST_PGDATA
#   scripts/postgres.sh stop              # stops the cluster named by MLHOOK_TEST_PGDATA and removes it
#   scripts/postgres.sh restart-immediate # pg_ctl restart -m immediate (a crash, for chaos tests)
#   scripts/postgres.sh pause|resume      # stop the server keeping its data, start it again (database down tests)
# PG_EXTRA_OPTIONS adds server options at start (the benchmarks preload pg_stat_statements).
set -euo pipefail
bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin="$d"; done
[ -n "$bin" ] || bin="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
if [ ! -x "$bin/initdb" ]; then
  echo "postgres.sh: no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql (scripts/bootstrap.sh postgresql)" >&2
  exit 1
fi
# initdb refuses root: run the server as the postgres user when root.
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# Starts the server with no descriptor of ours but 0-2: a caller that watches a descriptor to see this script end
# (Foundation's Process does) would otherwise wait for the server's whole life.
pg_start() {
  (
    for fd in /proc/self/fd/*; do
      n="${fd##*/}"
      if [ "$n" -gt 2 ] && [ "$n" -ne 255 ]; then eval "exec $n>&-"; fi
    done 2>/dev/null
    as_owner "$bin/pg_ctl" "$@" </dev/null
  )
}

case "${1:-}" in
  start)
    dir="$(mktemp -d /tmp/mlhook-pg.XXXXXX)"
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "-c listen_addresses='' -k $dir -c fsync=on -c synchronous_commit=on -c max_connections=300 -c shared_buffers=64MB ${PG_EXTRA_OPTIONS:-}" >"$dir/options"
    pg_start -D "$dir/data" -l "$dir/log" -w -t 60 start -o "$(cat "$dir/options")" >/dev/null \
      || { cat "$dir/log" >&2; exit 1; }
    echo "export MLHOOK_TEST_PGDATA='$dir/data'"
    echo "export MLHOOK_TEST_DATABASE_URL='postgres://postgres@/postgres?host=$dir'"
    ;;
  stop)
    data="${MLHOOK_TEST_PGDATA:?MLHOOK_TEST_PGDATA is not set}"
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$(dirname "$data")"
    ;;
  restart-immediate)
    data="${MLHOOK_TEST_PGDATA:?MLHOOK_TEST_PGDATA is not set}"
    pg_start -D "$data" -m immediate -w -t 60 restart >/dev/null
    ;;
  pause)
    data="${MLHOOK_TEST_PGDATA:?MLHOOK_TEST_PGDATA is not set}"
    as_owner "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
    ;;
  resume)
    data="${MLHOOK_TEST_PGDATA:?MLHOOK_TEST_PGDATA is not set}"
    dir="$(dirname "$data")"
    pg_start -D "$data" -l "$dir/log" -w -t 60 start -o "$(cat "$dir/options")" >/dev/null
    ;;
  *)
    echo "usage: scripts/postgres.sh start|stop|restart-immediate|pause|resume" >&2
    exit 2
    ;;
esac
