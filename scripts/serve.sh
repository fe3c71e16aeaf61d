#!/usr/bin/env bash
# Builds mlhook (release) and runs `mlhook serve` with any arguments given; with none, on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
swift build -c release --product mlhook >&2
exec .build/release/mlhook serve "$@"
