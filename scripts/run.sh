#!/usr/bin/env bash
# Runs the collector on its embedded defaults: installs the system packages it needs, builds a
# release binary and starts `sextant serve` (extra arguments are passed to it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-system-packages.sh
swift build -c release --product sextant
exec .build/release/sextant serve "$@"
