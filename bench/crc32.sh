#!/usr/bin/env bash
# The body log's checksum: zlib's crc32 against the slicing-by-8 CRC-32 mlhook had, at 7 KB (the push payload),
# 64 KiB and 1 MiB. Prints microseconds per buffer for each. Usage: bench/crc32.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r Sources/CZlibCRC "$work/CZlibCRC"
swiftc -O -I "$work" bench/crc32.swift -o "$work/crc32" 2>/dev/null
for n in 7324 65536 1048576; do "$work/crc32" "$n"; done
