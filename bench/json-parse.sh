#!/usr/bin/env bash
# Micro-benchmark of the planner's one-pass JSON parser (MLHookCore's JSONValue.parse) on the ~7 KB push
# payload: compiles the parser's two files with `swiftc -O` and times 20 000 parses.
# Usage: bench/json-parse.sh [REV]   parser source at a git revision (default: the working tree), e.g.
#        bench/json-parse.sh 8fc930d~1 && bench/json-parse.sh 8fc930d   (before and after a change)
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:-}
PAYLOAD=${PAYLOAD:-Tests/TestSupport/Fixtures/webhooks/github/push.tag-deleted.octokit.json}
work=$(mktemp -d /tmp/mlhook-json.XXXXXX)
trap 'rm -rf "$work"' EXIT
for f in JSONValue.swift JSONValue+Parsing.swift; do
  if [ -n "$REV" ]; then git show "$REV:Sources/MLHookCore/Events/$f" > "$work/$f"; else cp "Sources/MLHookCore/Events/$f" "$work/$f"; fi
done
cat > "$work/main.swift" <<'SWIFT'
import Foundation
let data = [UInt8](FileManager.default.contents(atPath: CommandLine.arguments[1])!)
let count = 20_000
var members = 0
let start = Date()
for _ in 0..<count { if case .object(let o)? = JSONValue.parse(data) { members += o.count } }
let seconds = Date().timeIntervalSince(start)
print(String(format: "JSONValue.parse: %.1f µs per parse of %d bytes (%d parses, %d top-level members)", seconds / Double(count) * 1e6, data.count, count, members / count))
SWIFT
swiftc -O -o "$work/parse" "$work/JSONValue.swift" "$work/JSONValue+Parsing.swift" "$work/main.swift"
"$work/parse" "$PAYLOAD"
