#!/usr/bin/env bash
# Sextant's ingest benchmark of record (README, "Ingest (sextant-loadgen)"): builds the release
# binaries, then runs sextant-loadgen's open-loop load per channel (on a server pre-filled with an
# hour), each decoder alone, the store alone, and the anchors (raw SQLite; Prometheus 2.42 when
# /usr/bin/prometheus is installed). Extra arguments go to sextant-loadgen (e.g. --channels zipkin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

swift build -c release --product sextant
swift build -c release --product sextant-loadgen

# Allocation counts of the decoder-alone mode come from a tiny malloc counter preloaded into the
# generator (it counts the generator's allocations only).
counter="$(mktemp -d)/malloc-count.so"
gcc -O2 -shared -fPIC -o "$counter" scripts/malloc-count.c
trap 'rm -rf "$(dirname "$counter")"' EXIT

LD_PRELOAD="$counter" .build/release/sextant-loadgen --sextant-bin .build/release/sextant "$@"
