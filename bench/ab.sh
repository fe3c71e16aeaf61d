#!/usr/bin/env bash
# A/B ingest comparison of two mlhook binaries under the same load, alternated to cancel out machine drift.
#
# Each run starts `BIN serve` with one GitHub source and a realistic rule, loads it with wrk (bench/ingest.lua:
# the ~7 KB push, signed, a unique delivery id per request; -t2 -c64, DURATION s), and prints, per binary and run:
#   req/s, p99, mlhook CPU µs per request (/proc/PID/stat), bytes written per request (/proc/PID/io wchar),
#   and the planning backlog when the load stopped (events stored but not planned: a figure that defers
#   planning past the run is not a gain).
# Usage: bench/ab.sh OLD_BIN NEW_BIN [PAIRS]      (PAIRS=3, DURATION=12; EXTRA_YAML appends to the config)
# To get an older binary: git worktree add /tmp/old REV && swift build -c release --product mlhook \
#   --package-path /tmp/old --scratch-path /tmp/old/.build-old   (then OLD_BIN=/tmp/old/.build-old/release/mlhook)
# Everything runs on 127.0.0.1 and stops by itself; processes are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/ab.sh OLD_BIN NEW_BIN [PAIRS]}
NEW=${2:?usage: bench/ab.sh OLD_BIN NEW_BIN [PAIRS]}
PAIRS=${3:-3}
DURATION=${DURATION:-12}
PAYLOAD=${PAYLOAD:-Tests/TestSupport/Fixtures/webhooks/github/push.tag-deleted.octokit.json}
scripts/bootstrap.sh wrk sqlite3 >&2

secret="ab-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$PAYLOAD" | awk '{print $NF}')"

one() { # $1 label, $2 binary
  local work port pid t0 t1 w0 w1 n backlog
  work=$(mktemp -d /tmp/mlhook-ab.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/mlhook.yaml" <<YAML
server: { listen: "127.0.0.1:$port" }
store: { path: "$work/mlhook.db" }
sources:
  - { name: github, type: github, secrets: [ { env: BENCH_SECRET } ] }
rules:
  - name: retrain-on-main
    when: { source: github, kind: push, branches: [main], paths: ["train/**"] }
    actions:
      - start_run: { experiment: "{{ repository.name | slug }}", script: train.py, compute: cpu-cluster }
${EXTRA_YAML:-}
YAML
  BENCH_SECRET="$secret" "$2" serve --config "$work/mlhook.yaml" > "$work/mlhook.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
  t0=$(awk '{print $14+$15}' /proc/$pid/stat); w0=$(awk '/^wchar/ {print $2}' /proc/$pid/io)
  BENCH_BODY="$PAYLOAD" BENCH_SIG="$sig" BENCH_PATH=/hooks/github BENCH_RUN="ab-$RANDOM$RANDOM" \
    wrk -t2 -c64 -d"${DURATION}s" --timeout 10s -s bench/ingest.lua "http://127.0.0.1:$port" > "$work/wrk.out" 2>&1
  t1=$(awk '{print $14+$15}' /proc/$pid/stat); w1=$(awk '/^wchar/ {print $2}' /proc/$pid/io)
  backlog=$(sqlite3 "$work/mlhook.db" "SELECT count(*) FROM events WHERE state = 'received'")
  kill -TERM $pid; wait $pid || true
  n=$(awk '$1=="BENCH_2XX" {print $2}' "$work/wrk.out")
  printf '%-4s %9s req/s  p99 %7s ms  %6s µs CPU/req  %6s bytes written/req  backlog %s\n' "$1" \
    "$(awk '$1=="BENCH_RPS" {print $2}' "$work/wrk.out")" "$(awk '$1=="BENCH_P99_MS" {print $2}' "$work/wrk.out")" \
    "$(awk -v t="$((t1 - t0))" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')" \
    "$(( (w1 - w0) / n ))" "$backlog"
  rm -rf "$work"
}

for i in $(seq 1 "$PAIRS"); do
  one old "$OLD"
  one new "$NEW"
done
