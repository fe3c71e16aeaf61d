# Shared by bench/ingest.sh, bench/ab.sh and bench/breakdown.sh (sourced, not run).
#
# bench_one LABEL BIN [PATH] starts `BIN serve` with one GitHub source and a realistic rule, loads it with
# wrk (bench/ingest.lua: the ~7 KB push, signed, a unique delivery id per request; -t2 -c64, DURATION s) on
# PATH (default /hooks/github), and prints one line: req/s, p50, p99, mlhook's CPU µs per request
# (/proc/PID/stat), wrk's own CPU µs per request, bytes mlhook wrote per request (/proc/PID/io wchar), and
# the planning backlog when the load stopped (events stored but not planned: a figure that defers planning
# past the run is not a gain). Extra environment for mlhook goes in BENCH_ENV ("NAME=value ..."), extra
# configuration in EXTRA_YAML. Everything runs on 127.0.0.1; mlhook is stopped by its PID.
DURATION=${DURATION:-12}
PAYLOAD=${PAYLOAD:-Tests/TestSupport/Fixtures/webhooks/github/push.tag-deleted.octokit.json}
secret="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$PAYLOAD" | awk '{print $NF}')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }

# bench_config PORT DIR: mlhook's configuration for the benchmarks (store in DIR, SYNCHRONOUS full by default;
# with BENCH_STORE=postgres the database at BENCH_DB_URL instead, and Azure ML in cloud mode, since the embedded
# aml-local is refused with it: no job is planned by this payload, so Azure ML is never called), with a
# realistic rule, so every stored event is also normalized and planned while the load runs.
bench_config() {
  if [ "${BENCH_STORE:-sqlite}" = postgres ]; then
    cat <<YAML
server: { listen: "127.0.0.1:$1" }
store: { postgres: { url: { env: BENCH_DB_URL }, pool_size: ${BENCH_POOL:-10} } }
azureml: { mode: cloud, cloud: { tenant_id: t, client_id: c, client_secret: { env: BENCH_SECRET }, subscription_id: s, resource_group: g, workspace: w } }
YAML
  else
    echo "server: { listen: \"127.0.0.1:$1\" }"
    echo "store: { path: \"$2/mlhook.db\", synchronous: ${SYNCHRONOUS:-full} }"
  fi
  cat <<YAML
sources:
  - { name: github, type: github, secrets: [ { env: BENCH_SECRET } ] }
rules:
  - name: retrain-on-main
    when: { source: github, kind: push, branches: [main], paths: ["train/**"] }
    actions:
      - start_run: { experiment: "{{ repository.name | slug }}", script: train.py, compute: cpu-cluster }
${EXTRA_YAML:-}
YAML
}

bench_one() {
  local work port pid t0 t1 w0 w1 n backlog wrkcpu hz
  work=$(mktemp -d /tmp/mlhook-bench.XXXXXX)
  port=$(free_port)
  bench_config "$port" "$work" > "$work/mlhook.yaml"
  # shellcheck disable=SC2086  # BENCH_ENV is a list of NAME=value words
  env ${BENCH_ENV:-} BENCH_SECRET="$secret" "$2" serve --config "$work/mlhook.yaml" > "$work/mlhook.log" 2>&1 &
  pid=$!
  wait_port "$port"
  t0=$(awk '{print $14+$15}' /proc/$pid/stat); w0=$(awk '/^wchar/ {print $2}' /proc/$pid/io)
  local TIMEFORMAT='%3U %3S'
  { time BENCH_BODY="$PAYLOAD" BENCH_SIG="$sig" BENCH_PATH="${3:-/hooks/github}" BENCH_RUN="b-$RANDOM$RANDOM" \
      wrk -t2 -c64 -d"${DURATION}s" --timeout 10s -s bench/ingest.lua "http://127.0.0.1:$port" > "$work/wrk.out" 2>&1; } 2> "$work/wrk.time"
  t1=$(awk '{print $14+$15}' /proc/$pid/stat); w1=$(awk '/^wchar/ {print $2}' /proc/$pid/io)
  backlog=$(sqlite3 "$work/mlhook.db" "SELECT count(*) FROM events WHERE state = 'received'" 2>/dev/null || echo 0)
  kill -TERM $pid; wait $pid || true
  n=$(awk '$1=="BENCH_2XX" {print $2}' "$work/wrk.out")
  hz=$(getconf CLK_TCK)
  wrkcpu=$(awk -v n="$n" '{ printf "%.1f", ($1 + $2) * 1e6 / n }' "$work/wrk.time")
  printf '%-10s %8s req/s  p50 %6s ms  p99 %7s ms  %6s µs CPU/req  wrk %5s µs/req  %6s bytes written/req  backlog %s\n' "$1" \
    "$(awk '$1=="BENCH_RPS" {print $2}' "$work/wrk.out")" "$(awk '$1=="BENCH_P50_MS" {print $2}' "$work/wrk.out")" \
    "$(awk '$1=="BENCH_P99_MS" {print $2}' "$work/wrk.out")" \
    "$(awk -v t="$((t1 - t0))" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')" \
    "$wrkcpu" "$(( (w1 - w0) / n ))" "$backlog"
  rm -rf "$work"
}
