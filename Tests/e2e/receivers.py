"""Debian's Prometheus 2.42 and VictoriaMetrics (single node) started on loopback for the tests
that send to them or read from them: remote write out, query mode.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from mesh import http_get, spawn

VICTORIA_BIN = Path("/usr/bin/victoria-metrics")
PROMETHEUS_BIN = Path(os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus"))
REQUIRED = os.environ.get("SEXTANT_E2E_REQUIRE_PROMETHEUS") == "1"
TIMEOUT_S = 60.0


def need(binary: Path) -> None:
    if not binary.exists():
        message = f"{binary} not installed (scripts/install-system-packages.sh --test)"
        if REQUIRED:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def victoria(workdir: Path, port: int):
    workdir.mkdir(parents=True, exist_ok=True)
    # No latency offset: the newest samples are queryable at once.
    process = spawn([str(VICTORIA_BIN), f"-storageDataPath={workdir / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
                     "-search.latencyOffset=0s", "-retentionPeriod=100y"], workdir / "victoria.log")
    wait_healthy(f"http://127.0.0.1:{port}/health", process)
    return process


def prometheus(workdir: Path, port: int):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(json.dumps({"global": {"scrape_interval": "15s"}}) + "\n")
    process = spawn([str(PROMETHEUS_BIN), f"--config.file={workdir / 'prometheus.yml'}",
                     f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
                     "--web.enable-remote-write-receiver"], workdir / "prometheus.log")
    wait_healthy(f"http://127.0.0.1:{port}/-/ready", process)
    return process


def wait_healthy(url: str, process) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: the receiver exited"
        try:
            if http_get(url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


def query(port: int, promql: str) -> list[dict]:
    params = {"query": promql}
    status, body = http_get(f"http://127.0.0.1:{port}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10)
    assert status == 200, body[:500]
    return json.loads(body)["data"]["result"]
