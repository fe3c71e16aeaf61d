#!/usr/bin/env bash
# Builds mlhook (release) when its sources changed and runs `mlhook serve` with any arguments given; with none,
# on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
bin=.build/release/mlhook
# A no-op `swift build` still takes about 11 s on 2 cores: start the binary when no source is newer than it.
if [ ! -x "$bin" ] || [ -n "$(find Sources Package.swift -newer "$bin" -print -quit)" ]; then
    swift build -c release --product mlhook >&2
fi
echo "mlhook: $PWD/$bin; for the CLI in this shell: export PATH=\"$PWD/.build/release:\$PATH\"" >&2
exec "$bin" serve "$@"
