#!/usr/bin/env bash
# One replica against PostgreSQL versus three on the same database, same total load (CONNECTIONS over N wrk
# processes), the ~7 KB signed push with a unique delivery id per request, every 2xx fsynced (synchronous_commit
# on). Prints aggregate req/s, p50, p99, errors, and per event: WAL bytes, commits, WAL fsyncs and the
# database's CPU; from the CPU per event, a projection for a dedicated 8-core PostgreSQL.
# On a 2-core machine the replicas, wrk and PostgreSQL share the cores: this shows contention, not scaling.
# Usage: bench/replicas.sh          (DURATION=12 CONNECTIONS=64)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh wrk postgresql >&2
. bench/lib.sh
. bench/pglib.sh
swift build -c release --product mlhook >&2
BIN=.build/release/mlhook
pg_start

echo "replicas on one PostgreSQL: ${DURATION}s, $CONNECTIONS connections in total, 127.0.0.1, $(nproc) cores"
printf '%-22s %10s %10s %10s %10s %10s\n' setup req/s p50_ms p99_ms 2xx other
pg_bench 1 "1 replica" "$BIN"; one="$PG_LINE"; one_cpu=$PG_CPU_US
pg_bench 3 "3 replicas" "$BIN"; three="$PG_LINE"
echo "1 replica:  $one"
echo "3 replicas: $three"
awk -v us="$one_cpu" 'BEGIN { printf "projection: %.0f µs of PostgreSQL CPU per event (1 replica) -> about %.0f events/s on 8 dedicated cores at 83%% (Hatchet: 2,000 runs/s at 83%% of 8 vCPU)\n", us, 8 * 0.83 * 1e6 / us }'
