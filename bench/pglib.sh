# Shared by bench/ingest.sh --store postgres and bench/replicas.sh (sourced after bench/lib.sh, not run).
#
# pg_start starts a throwaway PostgreSQL cluster (scripts/postgres.sh: a temp dir, a Unix socket, fsync and
# synchronous_commit on) and stops it at exit. pg_bench N LABEL BIN starts N `BIN serve` replicas on one new
# database, loads them with N wrk processes at once (CONNECTIONS/N connections each, so the total load is the
# same whatever N), and prints one line: total req/s, p50 (the replicas' mean), p99 (the worst replica's), 2xx,
# other answers, and per stored event the statements run (pg_stat_statements, preloaded by pg_start), the
# database's WAL bytes (pg_current_wal_lsn), commits (pg_stat_database),
# WAL fsyncs (pg_stat_wal) and the cluster's CPU µs (/proc of the postmaster and its backends). It also checks
# that every 2xx is a row. Everything runs on 127.0.0.1 and stops by itself; processes are stopped by their PID.
CONNECTIONS=${CONNECTIONS:-64}

pg_start() {
  eval "$(PG_EXTRA_OPTIONS="-c shared_preload_libraries=pg_stat_statements" scripts/postgres.sh start)"
  export MLHOOK_TEST_PGDATA MLHOOK_TEST_DATABASE_URL
  trap 'for p in "${pg_pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; scripts/postgres.sh stop' EXIT
}

pg_q() { psql "$1" -qAtX -c "$2"; }

# CPU ticks of the cluster: the postmaster and every process it started (backends, WAL writer, checkpointer).
pg_cpu() {
  local pm total=0 p
  pm=$(head -1 "$MLHOOK_TEST_PGDATA/postmaster.pid")
  for p in "$pm" $(ps -o pid= --ppid "$pm"); do
    total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

pg_bench() { # N LABEL BIN
  local n=$1 label=$2 bin=$3 db url work i port lsn0 c0 s0 cpu0 lsn1 c1 s1 cpu1 rows rps p50 p99 ok other hz
  pg_pids=()
  db="bench_${n}_$RANDOM$RANDOM"
  pg_q "$MLHOOK_TEST_DATABASE_URL" "CREATE DATABASE $db"
  url=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$MLHOOK_TEST_DATABASE_URL" "$db")
  work=$(mktemp -d /tmp/mlhook-pgbench.XXXXXX)
  local ports=()
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    BENCH_STORE=postgres bench_config "$port" "$work" > "$work/mlhook-$i.yaml"
    BENCH_DB_URL="$url" BENCH_SECRET="$secret" "$bin" serve --config "$work/mlhook-$i.yaml" > "$work/mlhook-$i.log" 2>&1 &
    pg_pids+=($!)
    ports+=("$port")
    wait_port "$port"
  done
  pg_q "$url" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 || true
  st0=$(pg_q "$url" "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())" 2>/dev/null || echo 0)
  lsn0=$(pg_q "$url" "SELECT pg_current_wal_lsn()")
  c0=$(pg_q "$url" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
  s0=$(pg_q "$url" "SELECT wal_sync FROM pg_stat_wal")
  cpu0=$(pg_cpu)
  local wpids=()
  for i in $(seq 1 "$n"); do
    BENCH_BODY="$PAYLOAD" BENCH_SIG="$sig" BENCH_PATH=/hooks/github BENCH_RUN="pg$i-$RANDOM$RANDOM" \
      wrk -t"$(( n == 1 ? 2 : 1 ))" -c"$((CONNECTIONS / n))" -d"${DURATION}s" --timeout 10s -s bench/ingest.lua \
      "http://127.0.0.1:${ports[$((i - 1))]}" > "$work/wrk-$i.out" 2>&1 &
    wpids+=($!)
  done
  for p in "${wpids[@]}"; do wait "$p"; done
  cpu1=$(pg_cpu)
  sleep 1  # the planner's last pass
  lsn1=$(pg_q "$url" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0')")
  c1=$(pg_q "$url" "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
  s1=$(pg_q "$url" "SELECT wal_sync FROM pg_stat_wal")
  st1=$(pg_q "$url" "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())" 2>/dev/null || echo 0)
  for p in "${pg_pids[@]}"; do kill -TERM "$p"; wait "$p" || true; done
  pg_pids=()
  rows=$(pg_q "$url" "SELECT count(*) FROM events")
  rps=$(cat "$work"/wrk-*.out | awk '$1=="BENCH_RPS" {s += $2} END {printf "%.0f", s}')
  p50=$(cat "$work"/wrk-*.out | awk '$1=="BENCH_P50_MS" {s += $2; n++} END {printf "%.2f", s / n}')
  p99=$(cat "$work"/wrk-*.out | awk '$1=="BENCH_P99_MS" {if ($2 > m) m = $2} END {printf "%.2f", m}')
  ok=$(cat "$work"/wrk-*.out | awk '$1=="BENCH_2XX" {s += $2} END {print s + 0}')
  other=$(cat "$work"/wrk-*.out | awk '$1=="BENCH_OTHER" {s += $2} END {print s + 0}')
  hz=$(getconf CLK_TCK)
  printf "%-${LABEL_WIDTH:-22}s %10s %10s %10s %10s %10s\n" "$label" "$rps" "$p50" "$p99" "$ok" "$other"
  PG_LINE=$(awk -v rows="$rows" -v ok="$ok" -v wal="$lsn1" -v c="$((c1 - c0))" -v s="$((s1 - s0))" -v cpu="$((cpu1 - cpu0))" -v hz="$hz" \
    -v st="$((${st1%.*} - ${st0%.*}))" \
    'BEGIN { printf "%d rows for %d 2xx; per event: %.3f statements (pg_stat_statements, all of mlhook'"'"'s work: ingest, planner, pollers), %.0f WAL bytes, %.3f commits, %.3f WAL fsyncs, %.0f µs PostgreSQL CPU", rows, ok, st / rows, wal / rows, c / rows, s / rows, cpu / hz * 1e6 / rows }')
  PG_CPU_US=$(awk -v rows="$rows" -v cpu="$((cpu1 - cpu0))" -v hz="$hz" 'BEGIN { printf "%.0f", cpu / hz * 1e6 / rows }')
  [ "$rows" -ge "$ok" ] || echo "LOST: $ok 2xx but $rows rows" >&2
  pg_q "$MLHOOK_TEST_DATABASE_URL" "DROP DATABASE $db WITH (FORCE)"
  rm -rf "$work"
}

# pg_two_replicas RULE_YAML: a throwaway cluster (stopped at exit), a separate `mlhook aml-local`, and two `BIN serve`
# replicas on one database with Azure ML in cloud mode pointed at that aml-local and the rules in RULE_YAML.
# Sets work (a temp dir, removed at exit), ports (the replicas') and pids. For bench/wakeup.sh and bench/soak.sh.
pg_two_replicas() {
  eval "$(scripts/postgres.sh start)"
  export MLHOOK_TEST_PGDATA MLHOOK_TEST_DATABASE_URL
  work=$(mktemp -d /tmp/mlhook-pg2.XXXXXX)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; scripts/postgres.sh stop; rm -rf "$work"' EXIT
  local aport r port base
  aport=$(free_port)
  "$BIN" aml-local --port "$aport" --data-dir "$work/aml" > "$work/aml.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do [ -s "$work/aml/credentials.json" ] && break; sleep 0.05; done
  c() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/aml/credentials.json" "$1"; }
  base=$(c base_url)
  ports=()
  for r in a b; do
    port=$(free_port)
    cat > "$work/$r.yaml" <<YAML
server: { listen: "127.0.0.1:$port" }
store: { postgres: { url: { env: BENCH_DB_URL } } }
azureml:
  mode: cloud
  cloud: { tenant_id: "$(c tenant_id)", client_id: "$(c client_id)", client_secret: { env: AML_SECRET }, subscription_id: "$(c subscription_id)",
           resource_group: "$(c resource_group)", workspace: "$(c workspace)", authority_url: "$base", arm_url: "$base" }
sources:
  - { name: github, type: github, secrets: [ { env: BENCH_SECRET } ] }
rules:
$1
YAML
    BENCH_DB_URL="$MLHOOK_TEST_DATABASE_URL" AML_SECRET="$(c client_secret)" BENCH_SECRET="$secret" \
      "$BIN" serve --config "$work/$r.yaml" > "$work/$r.log" 2>&1 &
    pids+=($!)
    ports+=("$port")
    wait_port "$port"
  done
}
