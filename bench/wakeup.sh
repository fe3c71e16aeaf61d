#!/usr/bin/env bash
# How fast a job planned on one replica starts somewhere on PostgreSQL: two `mlhook serve` replicas on one
# database and a separate `mlhook aml-local`; N signed pushes (a rule that scales a compute), all posted to
# replica A, PAUSE seconds apart. Prints p50, p95 and max of push -> attempt start (the job's attempt start minus
# the event's receipt, both stamped by mlhook) and how many jobs each replica ran. Idle workers wait for a NOTIFY
# (or 1-2 s): without the notification the figures would be around a second.
# Usage: bench/wakeup.sh             (N=30 PAUSE=0.3)
# Everything runs on 127.0.0.1 and stops by itself; processes are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
PAUSE=${PAUSE:-0.3}
scripts/bootstrap.sh postgresql >&2
. bench/lib.sh
swift build -c release --product mlhook >&2
BIN=$PWD/.build/release/mlhook
. bench/pglib.sh
pg_two_replicas "  - name: scale
    when: { source: github, kind: push }
    actions: [ { scale_compute: { name: cpu-cluster, max_nodes: 2 } } ]"

# One push per distinct commit (a job's idempotency key names the commit), each signed.
python3 - "$N" "$secret" "$work" <<'PY'
import hashlib, hmac, json, sys
n, secret, work = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
base = json.load(open("Tests/TestSupport/Fixtures/webhooks/github/push.new-branch-1-commit.octokit.json"))
for i in range(1, n + 1):
    base["after"] = hashlib.sha1(f"wakeup-{i}".encode()).hexdigest()
    body = json.dumps(base).encode()
    open(f"{work}/push-{i}.json", "wb").write(body)
    open(f"{work}/push-{i}.sig", "w").write("sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest())
PY
for i in $(seq 1 "$N"); do
  curl -s -o /dev/null -X POST "http://127.0.0.1:${ports[0]}/hooks/github" -H 'Content-Type: application/json' \
    -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: wake-$i-$RANDOM" -H "X-Hub-Signature-256: $(cat "$work/push-$i.sig")" \
    --data-binary @"$work/push-$i.json"
  sleep "$PAUSE"
done
for _ in $(seq 1 100); do
  left=$(psql "$MLHOOK_TEST_DATABASE_URL" -qAtX -c "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
  [ "$left" = 0 ] && break; sleep 0.2
done
echo "push -> attempt start, $N pushes to replica A, $PAUSE s apart, 2 replicas on one PostgreSQL, $(nproc) cores"
psql "$MLHOOK_TEST_DATABASE_URL" -qAtX -F ' ' -c "
  SELECT 'p50_ms', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY d) * 1000)::numeric, 1),
         'p95_ms', round((percentile_cont(0.95) WITHIN GROUP (ORDER BY d) * 1000)::numeric, 1),
         'max_ms', round((max(d) * 1000)::numeric, 1), 'jobs', count(*)
  FROM (SELECT a.started_at - e.received_at AS d FROM job_attempts a JOIN jobs j ON j.id = a.job_id JOIN events e ON e.id = j.event_id
        WHERE a.number = 1) t"
echo "jobs run by replica A: $(grep -c 'job succeeded' "$work/a.log" || true), by replica B: $(grep -c 'job succeeded' "$work/b.log" || true)"
