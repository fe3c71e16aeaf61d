#!/usr/bin/env bash
# How fast the loop closes: push → run started → final callback, on embedded defaults (mlhook serve with its
# embedded aml-local, SQLite), for the v1 path (start_run) and the v2 path (submit_job: code asset, command job,
# model registered on Completed), against adnanh/webhook running the same script synchronously.
#
# N signed GitHub pushes, one at a time, each of a distinct commit of a real git repository whose train/train.py
# takes about 1 s. For each push:
#   push → started: from just before the push is sent to the run's start at aml-local (its startTimeUtc, set when
#                   the process is spawned; for webhook, the first thing its command does is write the time);
#   push → callback: to the arrival of the signed final callback at a receiver on loopback (for webhook, to its
#                   synchronous answer, with include-command-output-in-response).
# Prints p50 and p95 of each, per path. Goal (issue 13): push → started p50 at most 300 ms.
# Usage: bench/loop.sh            (N=10 by default; BIN=.build/release/mlhook, built when missing)
# Everything runs on 127.0.0.1 and stops by itself; processes are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10}
scripts/bootstrap.sh webhook >&2
if [ -z "${BIN:-}" ]; then swift build -c release --product mlhook >&2; BIN=.build/release/mlhook; fi
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
. bench/lib.sh  # free_port, wait_port

work=$(mktemp -d /tmp/mlhook-loop.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# The repository: N commits, each changing train/ (so each is a new code asset, as a real push would be).
repo="$work/repo"
mkdir -p "$repo/train"
git -C "$repo" init -q -b main
cat > "$repo/train/train.py" <<'PY'
import os, sys, time
stamp = os.environ.get("LOOP_STAMP")
if stamp:
    with open(stamp, "a") as f:
        f.write(f"{time.time():.6f}\n")
print("training", sys.argv[1:], flush=True)
time.sleep(1)
os.makedirs("outputs/model", exist_ok=True)
open("outputs/model/model.txt", "w").write("ok")
PY
shas=()
for i in $(seq 1 "$N"); do
  echo "# commit $i" >> "$repo/train/train.py"
  git -C "$repo" add -A
  git -C "$repo" -c user.email=b@x -c user.name=bench commit -q -m "commit $i"
  shas+=("$(git -C "$repo" rev-parse HEAD)")
done

# The callback receiver: one line per delivery, "arrival-time<TAB>body".
rport=$(free_port)
cat > "$work/receiver.py" <<'PY'
import http.server, sys, time
out = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(f"{time.time():.6f}\t{self.path}\t{body.decode()}\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/receiver.py" "$rport" "$work/callbacks.tsv" &
pids+=("$!")
wait_port "$rport"

secret="loop-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
payload() { # $1 sha → a GitHub push payload naming the local repository
  printf '{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"%s","repository":{"full_name":"bench/loop","name":"loop","clone_url":"file://%s","default_branch":"main"},"commits":[{"id":"%s","added":[],"modified":["train/train.py"],"removed":[]}],"sender":{"login":"bench"}}' "$1" "$repo" "$1"
}
post() { # $1 port, $2 body file, $3 delivery id
  local sig
  sig="sha256=$(openssl dgst -sha256 -hmac "$secret" -hex < "$2" | awk '{print $NF}')"
  curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$1/hooks/github" -H "Content-Type: application/json" \
    -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: $3" -H "X-Hub-Signature-256: $sig" --data-binary @"$2"
}
now() { python3 -c 'import time; print(f"{time.time():.6f}")'; }
# p50 and p95 (nearest rank) of the numbers on stdin, in ms.
stats() { sort -n | awk '{a[NR]=$1} END { if (NR==0) { print "n/a"; exit } i50=int((NR*50+99)/100); i95=int((NR*95+99)/100); printf "p50 %6.0f ms  p95 %6.0f ms  (n=%d)", a[i50], a[i95], NR }'; }

run_mlhook() { # $1 v1|v2
  local api=$1 dir="$work/mlhook-$1" port action
  mkdir -p "$dir"
  port=$(free_port)
  if [ "$api" = v1 ]; then
    action='start_run: { experiment: loop, dir: train, script: train.py, arguments: ["--commit", "{{ after | short }}"], compute: cpu-cluster }'
  else
    action='submit_job: { experiment: loop, dir: train, command: "python train.py --commit {{ after | short }}", environment: "azureml:AzureML-sklearn-1.5@latest", compute: cpu-cluster, register_model: loop-model }'
  fi
  cat > "$dir/mlhook.yaml" <<YAML
server: { listen: "127.0.0.1:$port" }
store: { path: "$dir/mlhook.db" }
azureml: { mode: local, local: { data_dir: "$dir/aml-local" } }
sources:
  - { name: github, type: github, secrets: [ { env: LOOP_SECRET } ], git_schemes: [file] }
rules:
  - name: loop
    when: { source: github, kind: push, branches: [main] }
    actions:
      - $action
    callback:
      - url: { url: "http://127.0.0.1:$rport/$api", secret: { env: LOOP_CALLBACK } }
YAML
  LOOP_SECRET="$secret" LOOP_CALLBACK="whsec_$(head -c 32 /dev/urandom | base64)" "$BIN" serve --config "$dir/mlhook.yaml" > "$dir/mlhook.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$port"
  : > "$dir/pushes.tsv"
  for i in "${!shas[@]}"; do
    local sha=${shas[$i]} t0 code
    payload "$sha" > "$dir/push.json"
    t0=$(now)
    code=$(post "$port" "$dir/push.json" "$api-$i-$sha")
    [ "$code" = 202 ] || { echo "push $i answered $code" >&2; tail -20 "$dir/mlhook.log" >&2; exit 1; }
    printf '%s\t%s\n' "$sha" "$t0" >> "$dir/pushes.tsv"
    # One at a time: the next push once this one's callback arrived (at most 60 s).
    for _ in $(seq 1 600); do grep -P "\t/$api\t" "$work/callbacks.tsv" 2>/dev/null | grep "\"commit\":\"$sha\"" | grep -qE "\"status\":\"(succeeded|failed)\"" && break; sleep 0.1; done
  done
  # Join pushes, callbacks and aml-local's start times (read through `mlhook aml … --json` with the config).
  python3 - "$dir" "$work/callbacks.tsv" "$api" "$BIN" > "$dir/latency.tsv" <<'PY'
import datetime, json, subprocess, sys
d, cb, api, binary = sys.argv[1:5]
pushes = dict(line.rstrip("\n").split("\t") for line in open(f"{d}/pushes.tsv"))
arrivals = {}
for line in open(cb):
    t, path, body = line.rstrip("\n").split("\t", 2)
    if path != "/" + api:
        continue
    doc = json.loads(body)
    data = doc.get("data", {})
    if data.get("status") not in ("succeeded", "failed"):
        continue
    sha = data.get("provenance", {}).get("commit") or data.get("result", {}).get("commit")
    if sha in pushes and sha not in arrivals:
        arrivals[sha] = (float(t), data)
def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
for sha, t0 in pushes.items():
    if sha not in arrivals:
        print(f"{sha}\tnone\tnone\tmissing"); continue
    t, data = arrivals[sha]
    r = data.get("result", {})
    if api == "v1":
        out = subprocess.run([binary, "aml", "runs", "show", r["experiment"], r["run_id"], "--json", "--config", f"{d}/mlhook.yaml"],
                             capture_output=True, text=True, cwd=d).stdout
        start = json.loads(out).get("startTimeUtc")
    else:
        out = subprocess.run([binary, "aml", "jobs", "show", r["job_name"], "--json", "--config", f"{d}/mlhook.yaml"],
                             capture_output=True, text=True, cwd=d).stdout
        start = json.loads(out)["properties"]["properties"].get("StartTimeUtc")
    started = (ts(start) - float(t0)) * 1000 if start else float("nan")
    print(f"{sha}\t{started:.1f}\t{(t - float(t0)) * 1000:.1f}\t{data.get('status')}")
PY
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local bad
  bad=$(awk -F'\t' '$4 != "succeeded"' "$dir/latency.tsv" | wc -l)
  printf '%-16s push → started  %s\n' "mlhook $api" "$(awk -F'\t' '$2 != "none" {print $2}' "$dir/latency.tsv" | stats)"
  printf '%-16s push → callback %s   %s not succeeded\n' "" "$(awk -F'\t' '$3 != "none" {print $3}' "$dir/latency.tsv" | stats)" "$bad"
}

run_webhook() {
  local dir="$work/webhook" port
  mkdir -p "$dir"
  port=$(free_port)
  git -C "$repo" archive --format=tar HEAD train | tar -x -C "$dir"
  cat > "$dir/run.sh" <<SH
#!/bin/sh
cd "$dir/train" && LOOP_STAMP="$dir/stamps" exec python3 train.py --commit "\$1"
SH
  chmod +x "$dir/run.sh"
  cat > "$dir/hooks.json" <<JSON
[{"id": "github", "execute-command": "$dir/run.sh", "command-working-directory": "$dir",
  "include-command-output-in-response": true,
  "pass-arguments-to-command": [{"source": "payload", "name": "after"}],
  "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": "$secret",
                             "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}}}]
JSON
  webhook -hooks "$dir/hooks.json" -ip 127.0.0.1 -port "$port" > "$dir/webhook.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_port "$port"
  : > "$dir/latency.tsv"
  for i in "${!shas[@]}"; do
    local sha=${shas[$i]} t0 t1 code before
    payload "$sha" > "$dir/push.json"
    before=$(wc -l < "$dir/stamps" 2>/dev/null || echo 0)
    t0=$(now)
    code=$(post "$port" "$dir/push.json" "webhook-$i")
    t1=$(now)
    [ "$code" = 200 ] || { echo "webhook answered $code" >&2; exit 1; }
    stamp=$(sed -n "$((before + 1))p" "$dir/stamps")
    awk -v a="$t0" -v s="$stamp" -v b="$t1" 'BEGIN { printf "%.1f\t%.1f\n", (s - a) * 1000, (b - a) * 1000 }' >> "$dir/latency.tsv"
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  printf '%-16s push → started  %s\n' "adnanh/webhook" "$(cut -f1 "$dir/latency.tsv" | stats)"
  printf '%-16s push → answered %s   (synchronous: the answer is the script finishing)\n' "" "$(cut -f2 "$dir/latency.tsv" | stats)"
}

echo "bench/loop.sh: $N pushes per path, one at a time, a ~1 s script; $(nproc) cores"
run_mlhook v1
run_mlhook v2
run_webhook
