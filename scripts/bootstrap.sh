#!/usr/bin/env bash
# Installs what mlhook needs on a fresh Debian machine of this kind (the Swift toolchain is assumed present).
# Usage: scripts/bootstrap.sh [extra Debian packages...]   It does nothing when everything is there.
set -euo pipefail

# What mlhook needs to build and run; the tests add theirs (scripts/test.sh: chromium for the status-page test).
packages=(libssl-dev libsqlite3-dev zlib1g-dev bubblewrap git python3 python3-venv curl tzdata openssl "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "bootstrap: the Swift 6 toolchain (swift) is not on PATH" >&2; exit 1; }
