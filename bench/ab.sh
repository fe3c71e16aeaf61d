#!/usr/bin/env bash
# A/B ingest comparison of two mlhook binaries under the same load, alternated to cancel out machine drift.
#
# Each run starts `BIN serve` with one GitHub source and a realistic rule, loads it with wrk (bench/ingest.lua:
# the ~7 KB push, signed, a unique delivery id per request; -t2 -c64, DURATION s), and prints, per binary and run:
#   req/s, p50, p99, mlhook's and wrk's CPU µs per request, bytes written per request, and the planning
#   backlog when the load stopped (bench/lib.sh says how each is measured).
# Usage: bench/ab.sh OLD_BIN NEW_BIN [PAIRS]      (PAIRS=3, DURATION=12; EXTRA_YAML appends to the config)
# To get an older binary: git worktree add /tmp/old REV && swift build -c release --product mlhook \
#   --package-path /tmp/old --scratch-path /tmp/old/.build-old   (then OLD_BIN=/tmp/old/.build-old/release/mlhook)
# Everything runs on 127.0.0.1 and stops by itself; processes are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/ab.sh OLD_BIN NEW_BIN [PAIRS]}
NEW=${2:?usage: bench/ab.sh OLD_BIN NEW_BIN [PAIRS]}
PAIRS=${3:-3}
scripts/bootstrap.sh wrk sqlite3 >&2
. bench/lib.sh

for i in $(seq 1 "$PAIRS"); do
  bench_one old "$OLD"
  bench_one new "$NEW"
done
