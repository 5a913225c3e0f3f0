#!/usr/bin/env bash
# Builds the sextant binary an operator copies to a host: the Swift runtime and Foundation linked
# in (--static-swift-stdlib), stripped. What it still needs from the host is the system libraries
# Sextant means to use (SQLite, zlib, zstd, snappy, RE2 with its C++ runtime, libc); `ldd` lists
# them below. The test `Tests/e2e/test_release_binary.py` checks that list.
#
#   scripts/release.sh                        # release build into dist/sextant
#   scripts/release.sh --configuration debug  # the same link, unoptimised (what CI's e2e tests run)
#   scripts/release.sh --output DIR
#
# The static build keeps its own build folder (.build-static or .build-static-release): objects
# compiled for a static runtime cannot be linked into the ordinary build's binaries.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

configuration=release
output=dist
while [[ $# -gt 0 ]]; do
    case "$1" in
        --configuration|-c) configuration="$2"; shift 2 ;;
        --output|-o) output="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "release.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$configuration" in
    release) scratch=.build-static-release ;;
    debug) scratch=.build-static ;;
    *) echo "release.sh: --configuration is release or debug" >&2; exit 2 ;;
esac

swift build -c "$configuration" --product sextant --static-swift-stdlib --scratch-path "$scratch"
bin="$(swift build -c "$configuration" --static-swift-stdlib --scratch-path "$scratch" --show-bin-path)/sextant"

mkdir -p "$output"
cp "$bin" "$output/sextant.tmp"
strip --strip-all "$output/sextant.tmp"
mv "$output/sextant.tmp" "$output/sextant"
echo "$output/sextant: $(stat -c %s "$output/sextant") bytes (unstripped $(stat -c %s "$bin"))"
ldd "$output/sextant"
