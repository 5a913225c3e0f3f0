"""End-to-end: sextant's Prometheus endpoints, read by Debian's promtool and a real Prometheus.

Runs against sextant A once the mesh run and the access-log upload are in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from mesh import free_ports, http_get, spawn, stop_processes

PROMETHEUS_BIN = Path(os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus"))
PROMTOOL_BIN = Path(os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool"))
FEDERATION_QUERY = 'sum by (destination_workload) (istio_requests_total{reporter="destination"})'
PROMETHEUS_TIMEOUT_S = 30.0
FEDERATE_MATCH = '{__name__=~"istio_.*"}'
# Istio's and Envoy's own metric names break promtool's naming lints (units in names); they are
# kept because dashboards use them. Only these lints, and only on names Sextant does not own.
NAME_LINTS = ('use base unit "seconds" instead of "milliseconds"', "should not contain abbreviated units")


def _is_foreign_name_lint(line: str) -> bool:
    line = line.strip()
    return not line.startswith("sextant_") and any(line.endswith(lint) for lint in NAME_LINTS)
# CI sets this so that a missing Prometheus fails instead of skipping.
REQUIRE_PROMETHEUS = os.environ.get("SEXTANT_E2E_REQUIRE_PROMETHEUS") == "1"


def _skip_or_fail(message: str) -> None:
    if REQUIRE_PROMETHEUS:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def test_metrics_pass_promtool(sextant_a, a_with_access_logs):
    if not PROMTOOL_BIN.exists():
        _skip_or_fail(f"{PROMTOOL_BIN} not installed (apt-get install prometheus)")
    response = sextant_a.get("/metrics")
    assert response.status == 200, response.describe()
    content_type = response.headers.get("Content-Type") or response.headers.get("content-type") or ""
    assert content_type.startswith("text/plain"), f"GET /metrics Content-Type: {content_type!r}"
    assert "istio_requests_total{" in response.text, response.describe()
    result = subprocess.run([str(PROMTOOL_BIN), "check", "metrics"], input=response.body,
                            capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode(errors="replace").strip()
    problems = [line for line in output.splitlines() if line.strip() and not _is_foreign_name_lint(line)]
    # Exit 3 means lint findings only; anything else (1: unparsable exposition) fails.
    assert result.returncode in (0, 3) and not problems, (
        f"promtool check metrics (exit {result.returncode}) reported problems:\n{output}")


def _query(port: int, promql: str) -> dict | str:
    """The API's answer, or a short description of why there is none yet."""
    url = f"http://127.0.0.1:{port}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        status, body = http_get(url, timeout=5)
    except OSError as err:
        return repr(err)
    if status != 200:
        return f"GET {url} -> {status}: {body[:500]!r}"
    return json.loads(body)


def _per_workload(answer: dict | str) -> dict[str, float] | str:
    if isinstance(answer, str):
        return answer
    return {
        sample["metric"].get("destination_workload", ""): float(sample["value"][1])
        for sample in answer.get("data", {}).get("result", [])
    }


def test_prometheus_federation(sextant_a, a_with_access_logs, mesh_run, tmp_path_factory):
    if not PROMETHEUS_BIN.exists():
        _skip_or_fail(f"{PROMETHEUS_BIN} not installed (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("prometheus")
    (port,) = free_ports(1)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "sextant-federate",
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
            "honor_labels": True,
            "metrics_path": "/federate",
            "params": {"match[]": [FEDERATE_MATCH]},
            "static_configs": [{"targets": [f"127.0.0.1:{sextant_a.http_port}"]}],
        }],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=1) + "\n")  # JSON is YAML
    log_path = workdir / "prometheus.log"
    proc = spawn([
        str(PROMETHEUS_BIN),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], log_path)
    expected = {name: float(n) for name, n in mesh_run.received.items()}
    last: dict | str = "no answer yet"
    try:
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"prometheus exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            last = _per_workload(_query(port, FEDERATION_QUERY))
            if last == expected:
                break
            time.sleep(1)
        if last != expected:
            try:
                _, targets = http_get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5)
                targets_text = targets.decode(errors="replace")[:3000]
            except OSError as err:
                targets_text = repr(err)
            # The same request Prometheus makes (Go encodes match[] as match%5B%5D).
            federate = sextant_a.get("/federate", {"match[]": FEDERATE_MATCH}).describe(1500)
            pytest.fail(
                f"Prometheus query {FEDERATION_QUERY}\n  expected (requests each workload received): {expected}\n"
                f"  got after {PROMETHEUS_TIMEOUT_S:.0f} s: {last}\nscrape targets: {targets_text}\n"
                f"sextant: {federate}\n"
                f"prometheus log (tail):\n{log_path.read_text(errors='replace')[-2000:]}",
                pytrace=False)
    finally:
        stop_processes([proc], grace_s=10)
