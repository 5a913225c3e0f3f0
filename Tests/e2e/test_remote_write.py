"""End-to-end: a real Prometheus (Debian 2.42) remote-writes what it scrapes into sextant.

A tiny HTTP server in the test serves a fixed text exposition (counters, a
gauge with an escaped label value, a histogram, a large untyped value);
Prometheus scrapes it every second and has ``remote_write`` pointing at
sextant's ``POST /api/v1/write``. The same series (with the ``job`` and
``instance`` labels Prometheus adds) and the same values must come back from
sextant's ``/federate`` and ``/api/v1/series``, and every stored sample of a
series from ``/api/v1/query_range``; Prometheus' own ``up`` and
``scrape_samples_scraped`` arrive too.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mesh import free_ports, http_get, spawn, stop_processes
from conftest import start_sextant
from sextant import Sample, parse_exposition

PROMETHEUS_BIN = Path(os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus"))
REQUIRE_PROMETHEUS = os.environ.get("SEXTANT_E2E_REQUIRE_PROMETHEUS") == "1"
WAIT_TIMEOUT_S = 40.0
JOB = "e2e-rw-source"
MATCH = '{__name__=~"e2e_rw_.*"}'

EXPOSITION = """\
# HELP e2e_rw_requests_total Requests handled.
# TYPE e2e_rw_requests_total counter
e2e_rw_requests_total{code="200",path="/api/items"} 1027
e2e_rw_requests_total{code="500",path="/api/items"} 13
# TYPE e2e_rw_queue_depth gauge
e2e_rw_queue_depth{queue="orders"} -2.5
e2e_rw_queue_depth{queue="say \\"hi\\" \\\\ back"} 0.125
# TYPE e2e_rw_latency_seconds histogram
e2e_rw_latency_seconds_bucket{le="0.1"} 3
e2e_rw_latency_seconds_bucket{le="0.5"} 8
e2e_rw_latency_seconds_bucket{le="+Inf"} 9
e2e_rw_latency_seconds_sum 2.75
e2e_rw_latency_seconds_count 9
# TYPE e2e_rw_bytes untyped
e2e_rw_bytes 12345678901234
"""


def _skip_or_fail(message: str) -> None:
    if REQUIRE_PROMETHEUS:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def series_key(name: str, labels: dict[str, str]) -> tuple:
    return (name, tuple(sorted(labels.items())))


class _ExpositionServer:
    """Serves EXPOSITION at ``/metrics`` on 127.0.0.1 in a thread; counts the scrapes."""

    def __init__(self) -> None:
        outer = self
        self.scrapes = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = EXPOSITION.encode()
                outer.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="exposition", daemon=True)

    def __enter__(self) -> "_ExpositionServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class RemoteWriteRun:
    expected: dict[tuple, float]  # series key -> value (the exposition plus job and instance)
    instance: str  # the scrape target as Prometheus labels it
    federated: list[Sample]  # sextant's /federate for MATCH at the end
    meta: dict[str, list[Sample]]  # up / scrape_samples_scraped of the job, from /federate
    series: list[dict[str, str]]  # sextant's /api/v1/series for MATCH
    ranges: list[dict]  # sextant's /api/v1/query_range for MATCH
    started_at: float
    finished_at: float
    waited: str
    notes: str  # Prometheus' view when something was missing

    def __repr__(self) -> str:
        return f"RemoteWriteRun(series={len(self.expected)}, waited={self.waited!r})"


@pytest.fixture(scope="module")
def rw_sextant(e2e_dir, sextant_bin):
    instance = start_sextant("remote-write", e2e_dir, sextant_bin)
    yield instance
    instance.stop()


def _federated_values(samples: list[Sample]) -> dict[tuple, float]:
    return {series_key(s.name, s.labels): s.value for s in samples}


def _prometheus_notes(port: int, log_path: Path) -> str:
    parts = []
    for path in ("/api/v1/targets", "/api/v1/query?query=prometheus_remote_storage_samples_total"):
        try:
            _, body = http_get(f"http://127.0.0.1:{port}{path}", timeout=5)
            parts.append(f"GET {path}: {body.decode(errors='replace')[:1500]}")
        except OSError as err:
            parts.append(f"GET {path}: {err!r}")
    parts.append("prometheus log (tail):\n" + log_path.read_text(errors="replace")[-2500:])
    return "\n".join(parts)


@pytest.fixture(scope="module")
def remote_write_run(rw_sextant, tmp_path_factory) -> RemoteWriteRun:
    if not PROMETHEUS_BIN.exists():
        _skip_or_fail(f"{PROMETHEUS_BIN} not installed (apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("prometheus-remote-write")
    (port,) = free_ports(1)
    with _ExpositionServer() as source:
        instance = f"127.0.0.1:{source.port}"
        expected = {series_key(s.name, {**s.labels, "job": JOB, "instance": instance}): s.value
                    for s in parse_exposition(EXPOSITION)}
        scraped = len(expected)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": JOB,
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [instance]}],
            }],
            "remote_write": [{
                "url": f"http://127.0.0.1:{rw_sextant.http_port}/api/v1/write",
                "remote_timeout": "5s",
                "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"},
            }],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=1) + "\n")  # JSON is YAML
        log_path = workdir / "prometheus.log"
        started = time.time()
        proc = spawn([
            str(PROMETHEUS_BIN),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ], log_path)
        meta_match = f'{{job="{JOB}",__name__=~"up|scrape_samples_scraped"}}'
        try:
            deadline = time.monotonic() + WAIT_TIMEOUT_S
            while True:
                assert proc.poll() is None, f"prometheus exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                federated = rw_sextant.federate(MATCH)
                meta = {name: [s for s in rw_sextant.federate(meta_match) if s.name == name]
                        for name in ("up", "scrape_samples_scraped")}
                complete = (_federated_values(federated) == expected
                            and [s.value for s in meta["up"]] == [1.0]
                            and [s.value for s in meta["scrape_samples_scraped"]] == [float(scraped)])
                if complete or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            waited = "complete" if complete else f"incomplete after {WAIT_TIMEOUT_S:.0f} s"
            notes = "" if complete else _prometheus_notes(port, log_path)
        finally:
            stop_processes([proc], grace_s=10)
        finished = time.time()
    series = rw_sextant.series(MATCH)
    ranges = rw_sextant.query_range(MATCH, start=started - 5, end=finished + 1)
    return RemoteWriteRun(expected=expected, instance=instance, federated=federated, meta=meta, series=series,
                          ranges=ranges, started_at=started, finished_at=finished, waited=waited, notes=notes)


def _table(values: dict[tuple, float]) -> str:
    return "\n".join(f"  {name}{dict(labels)} {value!r}" for (name, labels), value in sorted(values.items()))


def test_federate_serves_what_prometheus_scraped(remote_write_run):
    run = remote_write_run
    actual = _federated_values(run.federated)
    assert actual == run.expected, (
        f"/federate?match[]={MATCH} ({run.waited}):\n{_table(actual)}\nexpected (the exposition + job, instance):\n"
        f"{_table(run.expected)}\n{run.notes}")
    # Each sample keeps its own timestamp: one of Prometheus' scrapes during the run.
    wrong_time = [str(s) for s in run.federated
                  if s.timestamp_ms is None
                  or not run.started_at * 1000 - 1000 <= s.timestamp_ms <= run.finished_at * 1000 + 1000]
    assert not wrong_time, (f"samples whose timestamp is not within the run "
                            f"[{run.started_at * 1000:.0f}, {run.finished_at * 1000:.0f}] ms: {wrong_time}")


def test_prometheus_own_series_arrive(remote_write_run):
    run = remote_write_run
    got = {name: [(s.labels, s.value) for s in samples] for name, samples in run.meta.items()}
    labels = {"instance": run.instance, "job": JOB}
    expected = {"up": [(labels, 1.0)], "scrape_samples_scraped": [(labels, float(len(run.expected)))]}
    assert got == expected, f"/federate for the job's up and scrape_samples_scraped ({run.waited}): {got}\n{run.notes}"


def test_series_lists_the_same_series(remote_write_run):
    run = remote_write_run
    listed = sorted(series_key(labels["__name__"], {k: v for k, v in labels.items() if k != "__name__"})
                    for labels in run.series)
    assert listed == sorted(run.expected), (
        f"/api/v1/series?match[]={MATCH}: {run.series}\nexpected the label sets of:\n{_table(run.expected)}")


def test_query_range_samples_keep_their_values(remote_write_run):
    """Every remote-written sample of every series has the exposition's (constant) value."""
    run = remote_write_run
    problems = []
    seen = set()
    for series in run.ranges:
        metric = dict(series["metric"])
        key = series_key(metric.pop("__name__", ""), metric)
        seen.add(key)
        values = series.get("values") or []
        wrong = [v for v in values if float(v[1]) != run.expected.get(key)]
        if not values or wrong:
            problems.append(f"{key}: {len(values)} values, expected all {run.expected.get(key)!r}; wrong: {wrong[:5]}")
    if seen != set(run.expected):
        problems.append(f"series in query_range: {sorted(seen)}\nexpected: {sorted(run.expected)}")
    assert not problems, f"/api/v1/query_range?match={MATCH}:\n" + "\n".join(problems)
