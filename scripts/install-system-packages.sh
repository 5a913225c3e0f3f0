#!/usr/bin/env bash
# Installs the Debian packages Sextant needs, only those missing. Retries while another apt or
# dpkg process holds the lock. Usage: scripts/install-system-packages.sh [--test]
#   (default)  libsqlite3-dev zlib1g-dev libssl-dev libsnappy-dev libzstd-dev libre2-dev: what building
#              and running need
#   --test     also prometheus (prometheus, promtool), victoria-metrics and python3-venv for the tests
#              and benchmarks, chromium and chromium-driver for the page's browser test
set -euo pipefail

packages=(libsqlite3-dev zlib1g-dev libssl-dev libsnappy-dev libzstd-dev libre2-dev)
if [[ "${1:-}" == "--test" ]]; then
    packages+=(prometheus python3-venv victoria-metrics chromium chromium-driver)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi

retry() {
    local attempt
    for attempt in $(seq 1 30); do
        if "$@"; then return 0; fi
        echo "install-system-packages: '$*' failed (attempt $attempt), retrying in 10 s" >&2
        sleep 10
    done
    return 1
}

export DEBIAN_FRONTEND=noninteractive
retry $sudo apt-get update -qq
retry $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-system-packages: installed ${missing[*]}"
