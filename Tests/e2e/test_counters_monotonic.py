"""End-to-end: Istio's counters never step down, through retention passes and a restart.

A real Prometheus 2.42 scrapes Sextant's ``/metrics`` every second. Sextant takes the Bookinfo
access logs of the fixtures (real Envoy 1.40 output, days old) in two halves, with every retention
horizon at one hour and a pass every two seconds: the passes delete the calls and their daily
rollups, which ``istio_requests_total`` used to be summed from. Between the halves Sextant
restarts. Afterwards Prometheus finds no counter reset in any Istio series, and the totals are
every call of the files, each counted once.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from pathlib import Path

import pytest

from mesh import free_ports, http_get, spawn, stop_processes
from sextant import REPO_ROOT, Sextant
from test_federation import PROMETHEUS_BIN, _skip_or_fail

FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy"
TIMEOUT_S = 60.0
RESET_QUERIES = (
    "sum(resets(istio_requests_total[10m]))",
    "sum(resets(istio_request_duration_milliseconds_bucket[10m]))",
    "sum(resets(istio_request_bytes_sum[10m]))",
)


def _query(port: int, promql: str) -> float | None:
    """The scalar value of a one-sample answer, None while there is none."""
    url = f"http://127.0.0.1:{port}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        status, body = http_get(url, timeout=5)
    except OSError:
        return None
    if status != 200:
        return None
    result = json.loads(body).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if len(result) == 1 else None


def _wait_for_total(port: int, expected: float, proc) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"prometheus exited with {proc.returncode}"
        last = _query(port, "sum(istio_requests_total)")
        if last == expected:
            return
        time.sleep(0.5)
    pytest.fail(f"Prometheus's sum(istio_requests_total) is {last} after {TIMEOUT_S:.0f} s, expected {expected}",
                pytrace=False)


def _daily_rollups(data_dir: Path) -> int:
    with sqlite3.connect(f"file:{data_dir / 'sextant.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM call_rollups WHERE tier = 86400").fetchone()[0]


def _point_at(targets: Path, sextant: Sextant) -> None:
    staged = targets.with_suffix(".tmp")
    staged.write_text(json.dumps([{"targets": [f"127.0.0.1:{sextant.http_port}"]}]))
    staged.replace(targets)


def _upload(sextant: Sextant, workloads: list[str], node_ids: dict[str, str]) -> int:
    lines = 0
    for workload in workloads:
        body = (FIXTURES / "access-log" / f"{workload}.jsonl").read_bytes()
        response = sextant.post_access_log(node_ids[workload], body)
        assert response.status == 200, response.describe()
        lines += sum(1 for line in body.splitlines() if line.strip())
    return lines


def test_counters_never_step_down_through_retention_and_restart(tmp_path):
    if not PROMETHEUS_BIN.exists():
        _skip_or_fail(f"{PROMETHEUS_BIN} not installed (apt-get install prometheus)")
    topology = json.loads((FIXTURES / "topology.json").read_text())
    node_ids = {w["workload"]: w["node_id"] for w in topology["workloads"]}
    workloads = sorted(node_ids)
    sextant = Sextant("counters", tmp_path / "sextant", extra_args=(
        "--retention-raw", "1h", "--retention-minute", "1h", "--retention-hour", "1h",
        "--retention-interval", "2s", "--pairing-grace", "1"))
    prometheus = None
    try:
        sextant.start()
        (port,) = free_ports(1)
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        # The target is a file, rewritten when the restarted Sextant listens on new ports; the
        # instance label stays, so that its series go on.
        targets = workdir / "targets.json"
        _point_at(targets, sextant)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "sextant", "scrape_interval": "1s", "scrape_timeout": "1s", "honor_labels": True,
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                "relabel_configs": [{"target_label": "instance", "replacement": "sextant"}],
            }],
        }
        (workdir / "prometheus.yml").write_text(json.dumps(config) + "\n")  # JSON is YAML
        prometheus = spawn([
            str(PROMETHEUS_BIN), f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
        ], workdir / "prometheus.log")

        first = _upload(sextant, workloads[:3], node_ids)
        _wait_for_total(port, float(first), prometheus)
        # Retention takes the calls (days old) and their daily rollups; the counters stay.
        deadline = time.monotonic() + TIMEOUT_S
        while _daily_rollups(sextant.data_dir) > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _daily_rollups(sextant.data_dir) == 0, "retention left daily rollups of calls days old"
        time.sleep(3)  # a few scrapes after the pass
        assert _query(port, "sum(istio_requests_total)") == float(first)

        sextant.stop()
        sextant.start()
        _point_at(targets, sextant)
        second = _upload(sextant, workloads[3:], node_ids)
        _wait_for_total(port, float(first + second), prometheus)
        time.sleep(3)
        for query in RESET_QUERIES:
            assert _query(port, query) == 0.0, f"{query} = {_query(port, query)}"
    finally:
        if prometheus is not None:
            stop_processes([prometheus], grace_s=10)
        sextant.stop()
