#!/usr/bin/env bash
# The whole test suite: unit, in-process app, live loopback and crash tests (real SQLite files, real sockets,
# the real mlhook binary killed with SIGKILL).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# --build-tests also builds the mlhook binary that the crash tests start.
swift build --build-tests
swift test --skip-build --disable-xctest
