#!/usr/bin/env bash
# Where ingest's CPU goes: the same load (bench/lib.sh) on four builds of the same code, alternated.
#
#   full        the product: verify, validate, plan, log, store every event with its body (one fsync per group commit)
#   no-bodies   the same, but every body is stored empty (what the ~7 KB bodies cost SQLite: WAL, checkpoints)
#   no-store    everything but the store: answers 202 without writing anything (the ceiling without durability)
#   http-floor  a route that reads the body and answers 202 (Hummingbird and the kernel, nothing of mlhook)
#
# The switches come from bench/breakdown.patch, applied to a copy of HEAD that is built apart (in
# .build-breakdown, so the product never carries them). Usage: bench/breakdown.sh [PAIRS]   (PAIRS=2, DURATION=10)
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-2}
DURATION=${DURATION:-10}
scripts/bootstrap.sh wrk sqlite3 >&2
src=$(mktemp -d /tmp/mlhook-breakdown.XXXXXX)
trap 'rm -rf "$src"' EXIT
git archive HEAD | tar -x -C "$src"
(cd "$src" && git apply bench/breakdown.patch)
swift build -c release --product mlhook --package-path "$src" --scratch-path "$PWD/.build-breakdown" >&2
bin=.build-breakdown/release/mlhook
. bench/lib.sh

for i in $(seq 1 "$PAIRS"); do
  bench_one full "$bin"
  BENCH_ENV="MLHOOK_BENCH_NO_BODIES=1" bench_one no-bodies "$bin"
  BENCH_ENV="MLHOOK_BENCH_NO_STORE=1" bench_one no-store "$bin"
  bench_one http-floor "$bin" /bench/noop
done
