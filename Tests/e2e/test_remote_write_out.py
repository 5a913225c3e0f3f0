"""Remote write out (README, "Remote write out"): Sextant sends Istio's series and the ingested
ones to Prometheus remote-write receivers — Debian's VictoriaMetrics (single node) and Prometheus
2.42 with ``--web.enable-remote-write-receiver`` — with its external labels; the receivers hold
what ``/metrics`` says, one series for one. A receiver away for 30 s under load loses nothing: the requests
wait in a queue on disk, which outlives a SIGKILL of Sextant and is sent after the restart.
"""

from __future__ import annotations

import json
import time
import urllib.parse


from mesh import REPO_ROOT, free_ports, http_get, stop_processes, wait_for
from receivers import PROMETHEUS_BIN, VICTORIA_BIN, TIMEOUT_S, need as _need, prometheus as _prometheus, \
    query as _query, victoria as _victoria
from sextant import Sextant

FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy"
OUTAGE_S = 30


def _upload(sextant: Sextant) -> None:
    topology = json.loads((FIXTURES / "topology.json").read_text())
    for workload in topology["workloads"]:
        body = (FIXTURES / "access-log" / f"{workload['workload']}.jsonl").read_bytes()
        response = sextant.post_access_log(workload["node_id"], body)
        assert response.status == 200, response.describe()


def _exposed(sextant: Sextant) -> dict[tuple, float]:
    """istio_requests_total on /metrics, by (reporter, source workload, destination workload, code)."""
    totals: dict[tuple, float] = {}
    for line in sextant.get("/metrics").text.splitlines():
        if not line.startswith("istio_requests_total{"):
            continue
        labels = dict(part.split("=", 1) for part in _label_pairs(line[line.index("{") + 1:line.rindex("}")]))
        key = (labels["reporter"], labels["source_workload"], labels["destination_workload"], labels["response_code"])
        totals[key] = totals.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return totals


def _label_pairs(text: str) -> list[str]:
    # Fixture label values hold no quotes or commas.
    return [pair.replace('"', "") for pair in text.split('",') if pair]


def _received(port: int) -> dict[tuple, float]:
    result = _query(port, 'sum by (reporter, source_workload, destination_workload, response_code) '
                          '(istio_requests_total{cluster="east"})')
    return {(r["metric"]["reporter"], r["metric"]["source_workload"], r["metric"]["destination_workload"],
             r["metric"]["response_code"]): float(r["value"][1]) for r in result}


def _metric(sextant: Sextant, name: str) -> float:
    total = 0.0
    for line in sextant.get("/metrics").text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait(predicate, what: str, timeout: float = TIMEOUT_S):
    return wait_for(predicate, timeout, 0.5, what)


def test_receivers_hold_what_metrics_says_one_series_for_one(tmp_path):
    _need(VICTORIA_BIN)
    _need(PROMETHEUS_BIN)
    vm_port, prom_port = free_ports(2)
    receivers = [_victoria(tmp_path / "vm", vm_port), _prometheus(tmp_path / "prom", prom_port)]
    try:
        with Sextant("rw", tmp_path / "sextant", extra_args=(
                "--remote-write-url", f"http://127.0.0.1:{vm_port}/api/v1/write",
                "--remote-write-url", f"http://127.0.0.1:{prom_port}/api/v1/write",
                "--external-label", "cluster=east", "--remote-write-interval", "1s", "--pairing-grace", "1")) as sextant:
            _upload(sextant)
            expected = _wait(lambda: _exposed(sextant) if sum(_exposed(sextant).values()) >= 312 else None,
                             "Sextant to count every call")
            for port in (vm_port, prom_port):
                _wait(lambda: _received(port) == expected, f"receiver on {port} to hold /metrics's counts")
                series = _query(port, 'count(istio_requests_total{cluster="east"})')
                exposed = sum(1 for line in sextant.get("/metrics").text.splitlines()
                              if line.startswith("istio_requests_total{"))
                assert float(series[0]["value"][1]) == exposed
            assert _metric(sextant, 'sextant_remote_write_samples_total{url="http://127.0.0.1:%d/api/v1/write",outcome="dropped"}' % vm_port) == 0
    finally:
        stop_processes(receivers, grace_s=10)


def test_an_outage_and_a_sigkill_lose_nothing_queued(tmp_path):
    _need(VICTORIA_BIN)
    (vm_port,) = free_ports(1)
    url = f"http://127.0.0.1:{vm_port}/api/v1/write"
    args = ("--remote-write-url", url, "--external-label", "cluster=east", "--remote-write-interval", "1s",
            "--pairing-grace", "1")
    receiver = _victoria(tmp_path / "vm", vm_port)
    try:
        first = Sextant("rw-outage", tmp_path / "sextant", extra_args=args)
        first.start()
        _upload(first)
        _wait(lambda: sum(_received(vm_port).values()) >= 312, "the receiver to take the first snapshots")
        # The receiver goes away for 30 s while access logs keep coming: snapshots wait in the queue on disk.
        stop_processes([receiver], grace_s=10)
        outage_start = time.time()
        while time.time() - outage_start < OUTAGE_S:
            _upload(first)
            time.sleep(1)
        assert _metric(first, f'sextant_remote_write_queue_requests{{url="{url}"}}') >= OUTAGE_S - 5
        outage_end = time.time()
        first.process.kill()
        first.process.wait(timeout=10)

        receiver = _victoria(tmp_path / "vm", vm_port)
        second = Sextant("rw-outage", tmp_path / "sextant", extra_args=args)
        second.start()
        try:
            _wait(lambda: _metric(second, f'sextant_remote_write_queue_requests{{url="{url}"}}') == 0
                  and _metric(second, f'sextant_remote_write_samples_total{{url="{url}",outcome="sent"}}') > 0,
                  "the queue left by the killed Sextant to be sent")
            # Samples stamped during the outage arrived: about one a second for every series.
            seconds = outage_end - outage_start
            query = urllib.parse.urlencode({"match[]": 'istio_requests_total{cluster="east"}',
                                            "start": f"{outage_start:.3f}", "end": f"{outage_end:.3f}"})

            def export() -> list[dict]:
                status, body = http_get(f"http://127.0.0.1:{vm_port}/api/v1/export?{query}", timeout=10)
                assert status == 200, body[:500]
                return [json.loads(line) for line in body.decode().splitlines() if line.strip()]

            # VictoriaMetrics makes what it took searchable within a few seconds.
            exported = _wait(lambda: (lambda e: e if len(e) == len(_exposed(second)) else None)(export()),
                             "the outage's samples of every series to be searchable")
            for series in exported:
                inside = [ms for ms in series["timestamps"] if outage_start * 1000 <= ms <= outage_end * 1000]
                assert len(inside) >= int(seconds) - 1, (series["metric"], inside)
            assert _metric(second, f'sextant_remote_write_samples_total{{url="{url}",outcome="dropped"}}') == 0
        finally:
            second.stop()
    finally:
        stop_processes([receiver], grace_s=10)
