#!/usr/bin/env bash
# Soak: two `mlhook serve` replicas on one PostgreSQL and a separate `mlhook aml-local`, signed pushes of distinct
# commits at RATE per second for SECONDS_TOTAL, each planning a job (delete_model of a model that does not exist: done at
# once). Every minute it prints each hot table's live and dead tuples
# (pg_stat_user_tables), then the totals. Pass: dead tuples stay under 10x live; every job ends.
# Usage: bench/soak.sh               (SECONDS_TOTAL=600 RATE=50)
# Everything runs on 127.0.0.1 and stops by itself; processes are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${SECONDS_TOTAL:-600}
RATE=${RATE:-50}
scripts/bootstrap.sh postgresql >&2
. bench/lib.sh
swift build -c release --product mlhook >&2
BIN=$PWD/.build/release/mlhook
. bench/pglib.sh
pg_two_replicas "  - name: tidy
    when: { source: github, kind: push }
    actions: [ { delete_model: { id: "never-registered:1" } } ]"

python3 - "$SECONDS_TOTAL" "$RATE" "$secret" "${ports[0]}" "${ports[1]}" "$MLHOOK_TEST_DATABASE_URL" <<'PY'
import hashlib, hmac, http.client, json, subprocess, sys, time
total, rate, secret, pa, pb, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4], sys.argv[5], sys.argv[6]
base = json.load(open("Tests/TestSupport/Fixtures/webhooks/github/push.new-branch-1-commit.octokit.json"))
conns = [http.client.HTTPConnection("127.0.0.1", int(p)) for p in (pa, pb)]
def stats():
    q = ("SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables "
         "WHERE relname IN ('events', 'jobs', 'job_attempts', 'callbacks') ORDER BY relname")
    return subprocess.run(["psql", url, "-qAtX", "-F", " ", "-c", q], capture_output=True, text=True).stdout.split("\n")
start, sent, ok, worst = time.time(), 0, 0, 0.0
next_report = start + 60
while time.time() - start < total:
    base["after"] = hashlib.sha1(f"soak-{sent}-{start}".encode()).hexdigest()
    body = json.dumps(base).encode()
    sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    c = conns[sent % 2]
    try:
        c.request("POST", "/hooks/github", body, {"Content-Type": "application/json", "X-GitHub-Event": "push",
                  "X-GitHub-Delivery": f"soak-{sent}-{start}", "X-Hub-Signature-256": sig})
        r = c.getresponse(); r.read()
        ok += 200 <= r.status < 300
    except Exception:
        conns[sent % 2] = http.client.HTTPConnection("127.0.0.1", int((pa, pb)[sent % 2]))
    sent += 1
    time.sleep(max(0, start + sent / rate - time.time()))
    if time.time() >= next_report:
        next_report += 60
        rows = [l.split() for l in stats() if l]
        for name, live, dead in rows:
            worst = max(worst, int(dead) / max(1, int(live)))
        print(f"{int(time.time() - start):4d}s sent {sent} 2xx {ok} | " + "  ".join(f"{n} live {l} dead {d}" for n, l, d in rows), flush=True)
print(f"soak: {sent} pushes, {ok} 2xx, worst dead/live ratio over the hot tables {worst:.2f}")
PY
for _ in $(seq 1 150); do
  left=$(psql "$MLHOOK_TEST_DATABASE_URL" -qAtX -c "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
  [ "$left" = 0 ] && break; sleep 0.2
done
psql "$MLHOOK_TEST_DATABASE_URL" -qAtX -F ' ' -c "SELECT 'jobs', state, count(*) FROM jobs GROUP BY state ORDER BY state"
