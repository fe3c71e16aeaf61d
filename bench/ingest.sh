#!/usr/bin/env bash
# Ingest benchmark: mlhook vs adnanh/webhook on loopback, same payload, same load.
#
# Builds mlhook (release), starts it with one GitHub source, and runs wrk (64 connections, 2 threads,
# DURATION seconds) posting a real ~7 KB GitHub push payload (from the bundled fixtures), correctly signed,
# with a unique X-GitHub-Delivery per request so every request must be stored. Then the same against
# adnanh/webhook (Debian package `webhook`) with one hook whose trigger rule is payload-hmac-sha256 on
# X-Hub-Signature-256 and which runs /bin/true. Prints req/s, p50 and p99 for both, mlhook's peak RSS,
# the ratio, and checks that every 2xx mlhook sent is a row in its SQLite store.
#
# With --store postgres, also the same load against one replica on a throwaway PostgreSQL cluster (bench/pglib.sh),
# printed beside the others, with its WAL bytes, commits and fsyncs per event.
# Usage: bench/ingest.sh [--store postgres]   (DURATION=15 CONNECTIONS=64 THREADS=2 SYNCHRONOUS=full by default)
# Everything runs on 127.0.0.1 and stops by itself; processes are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SYNCHRONOUS=${SYNCHRONOUS:-full}
STORE=sqlite
if [ "${1:-}" = "--store" ]; then STORE=${2:?--store sqlite|postgres}; fi
case "$STORE" in sqlite|postgres) ;; *) echo "usage: bench/ingest.sh [--store postgres]" >&2; exit 2 ;; esac

scripts/bootstrap.sh wrk webhook sqlite3 >&2
[ "$STORE" = postgres ] && scripts/bootstrap.sh postgresql >&2
. bench/lib.sh  # PAYLOAD, secret, sig, free_port, wait_port, bench_config
swift build -c release --product mlhook >&2
BIN=.build/release/mlhook

work=$(mktemp -d /tmp/mlhook-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
if [ "$STORE" = postgres ]; then
  . bench/pglib.sh
  eval "$(PG_EXTRA_OPTIONS="-c shared_preload_libraries=pg_stat_statements" scripts/postgres.sh start)"
  export MLHOOK_TEST_PGDATA MLHOOK_TEST_DATABASE_URL
  trap 'cleanup; scripts/postgres.sh stop' EXIT
fi

bytes=$(wc -c < "$PAYLOAD")

run_wrk() { # $1 port, $2 path, $3 label
  BENCH_BODY="$PAYLOAD" BENCH_SIG="$sig" BENCH_PATH="$2" BENCH_RUN="$3-$RANDOM$RANDOM" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/ingest.lua "http://127.0.0.1:$1" > "$work/$3.wrk" 2>&1
}
field() { awk -v k="$1" '$1==k {print $2}' "$2"; }

# mlhook
mport=$(free_port)
bench_config "$mport" "$work" > "$work/mlhook.yaml"
BENCH_SECRET="$secret" "$BIN" serve --config "$work/mlhook.yaml" > "$work/mlhook.log" 2>&1 &
mpid=$!; pids+=("$mpid")
wait_port "$mport"
run_wrk "$mport" /hooks/github mlhook
mrss_kb=$(awk '/VmHWM/ {print $2}' /proc/"$mpid"/status)
# Events stored but not yet planned when the load stops: planning must keep up, or the figures above would
# include work deferred past the end of the run.
backlog=$(sqlite3 "$work/mlhook.db" "SELECT count(*) FROM events WHERE state = 'received'")
kill -TERM "$mpid"; wait "$mpid" || true
rows=$(sqlite3 "$work/mlhook.db" "SELECT count(*) FROM events")

# mlhook on PostgreSQL (one replica), the same load
if [ "$STORE" = postgres ]; then
  pgrow=$(LABEL_WIDTH=16 pg_bench 1 "mlhook-postgres" "$BIN"; echo "PG_LINE $PG_LINE")
fi

# adnanh/webhook
wport=$(free_port)
cat > "$work/hooks.json" <<JSON
[{"id": "github", "execute-command": "/bin/true", "command-working-directory": "$work",
  "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": "$secret",
                             "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}}}]
JSON
webhook -hooks "$work/hooks.json" -ip 127.0.0.1 -port "$wport" > "$work/webhook.log" 2>&1 &
wpid=$!; pids+=("$wpid")
wait_port "$wport"
run_wrk "$wport" /hooks/github webhook
kill -TERM "$wpid"; wait "$wpid" || true

m2xx=$(field BENCH_2XX "$work/mlhook.wrk"); mother=$(field BENCH_OTHER "$work/mlhook.wrk")
w2xx=$(field BENCH_2XX "$work/webhook.wrk"); wother=$(field BENCH_OTHER "$work/webhook.wrk")
mrps=$(field BENCH_RPS "$work/mlhook.wrk"); wrps=$(field BENCH_RPS "$work/webhook.wrk")
merr=$(grep -E "Socket errors|Non-2xx" "$work/mlhook.wrk" || true)
werr=$(grep -E "Socket errors|Non-2xx" "$work/webhook.wrk" || true)

echo "ingest benchmark: ${bytes}-byte signed GitHub push ($(basename "$PAYLOAD")), wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, 127.0.0.1, $(nproc) cores"
printf '%-16s %10s %10s %10s %10s %10s\n' server req/s p50_ms p99_ms 2xx other
printf '%-16s %10s %10s %10s %10s %10s\n' mlhook "$mrps" "$(field BENCH_P50_MS "$work/mlhook.wrk")" "$(field BENCH_P99_MS "$work/mlhook.wrk")" "$m2xx" "$mother"
[ "$STORE" = postgres ] && echo "$pgrow" | head -1
printf '%-16s %10s %10s %10s %10s %10s\n' adnanh/webhook "$wrps" "$(field BENCH_P50_MS "$work/webhook.wrk")" "$(field BENCH_P99_MS "$work/webhook.wrk")" "$w2xx" "$wother"
[ -n "$merr" ] && echo "mlhook wrk: $merr"
[ -n "$werr" ] && echo "webhook wrk: $werr"
echo "mlhook peak RSS: $((mrss_kb / 1024)) MB (VmHWM)"
[ "$STORE" = postgres ] && echo "mlhook-postgres: $(echo "$pgrow" | awk '$1=="PG_LINE" {sub(/^PG_LINE /, ""); print}')"
echo "mlhook store: synchronous=$SYNCHRONOUS, $rows rows for $m2xx 2xx responses"
echo "mlhook planning backlog when the load stopped: $backlog events ($(awk -v b="$backlog" -v m="$m2xx" 'BEGIN { printf "%.1f", 100 * b / m }')% of those stored)"
awk -v a="$mrps" -v b="$wrps" 'BEGIN { printf "ratio mlhook/webhook req/s: %.2fx\n", a / b }'
if [ "$rows" -lt "$m2xx" ]; then echo "FAIL: $((m2xx - rows)) acknowledged deliveries are not in the store"; exit 1; fi
echo "every 2xx is stored: yes"
