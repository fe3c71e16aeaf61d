#!/usr/bin/env bash
# The whole test suite: unit, in-process app, live loopback and crash tests (real SQLite files, real sockets,
# the real mlhook binary killed with SIGKILL).
set -euo pipefail
cd "$(dirname "$0")/.."
# The runtime packages, and what only the tests use: headless Chromium and its driver (e2e/ui), and a PostgreSQL
# server for the shared-store tests, and sqlite3 (the run book's backup script).
scripts/bootstrap.sh chromium chromium-driver postgresql sqlite3
# A throwaway PostgreSQL cluster (a temp dir, a Unix socket, fsync on), stopped and removed at exit.
eval "$(scripts/postgres.sh start)"
trap 'scripts/postgres.sh stop' EXIT
# --build-tests also builds the mlhook binary that the crash tests start.
swift build --build-tests
# Swift Testing runs every test at once by default: on 2 cores the hundreds of servers, child processes and
# database pools then wait so long for a thread that deadlines meant for a database (15 s to migrate) pass.
# Six running tests per core keep the machine busy without that.
export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="${SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH:-$(( $(nproc) * 6 ))}"
swift test --skip-build --disable-xctest
# The REST article's curl commands against a real `mlhook aml-local`.
e2e/article/replay.sh .build/debug/mlhook
# Python-side tests, in .venv-sdk (e2e/requirements.txt: the official SDK, pytest, selenium).
[ -x .venv-sdk/bin/pip ] || python3 -m venv .venv-sdk
.venv-sdk/bin/pip install -q --disable-pip-version-check -r e2e/requirements.txt
# The official Python SDK (azureml-core, pinned) against a real `mlhook aml-local`.
MLHOOK_BIN=.build/debug/mlhook .venv-sdk/bin/pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -W ignore::PendingDeprecationWarning e2e/sdk
# The official Azure ML v2 SDK (azure-ai-ml, pinned) against aml-local's HTTPS listener, in a venv of its own
# (e2e/requirements-v2.txt: azureml-core pins older azure-* packages).
[ -x .venv-sdk-v2/bin/pip ] || python3 -m venv .venv-sdk-v2
.venv-sdk-v2/bin/pip install -q --disable-pip-version-check -r e2e/requirements-v2.txt
MLHOOK_BIN=.build/debug/mlhook .venv-sdk-v2/bin/pytest -q -p no:cacheprovider -W ignore::DeprecationWarning e2e/sdk_v2
# The status page in a real headless Chromium against a running `mlhook serve`; saves .build/ui/status.png.
MLHOOK_BIN=.build/debug/mlhook .venv-sdk/bin/pytest -q -p no:cacheprovider -s e2e/ui
# Every libFuzzer harness briefly (scripts/fuzz.sh SECONDS runs them longer): a crash fails the suite.
FUZZ_SEED=${FUZZ_SEED:-1} scripts/fuzz.sh "${MLHOOK_FUZZ_SECONDS:-20}"
