"""Beyond one machine (README, "Beyond one machine"): a mesh split between two Sextants, both
remote-writing to Debian's VictoriaMetrics and to Prometheus 2.42; a Sextant in query mode
(``--query-prometheus``) drawing the graph from each receiver; and spans forwarded from one
Sextant to another over OTLP (``--otlp-export-endpoint``), through an outage and a SIGKILL.

The split uses the session's real Envoy mesh run: every other sidecar's access log goes to
Sextant "east", the rest to "west", each with its own external label.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mesh import REPO_ROOT, free_ports, stop_processes, wait_for
from receivers import PROMETHEUS_BIN, TIMEOUT_S, VICTORIA_BIN, need, prometheus, query, victoria
from sextant import Sextant, http_request, parse_exposition, wait_until_settled

ZIPKIN_FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy" / "zipkin"
# The fixture spans are older than the default 24 h of raw retention, which a restart applies.
KEEP = ("--retention-raw", "87600h", "--retention-minute", "87600h", "--retention-hour", "87600h")


def _edges(graph: dict) -> dict[tuple, dict]:
    """A graph's edges by (source, target, protocol): requests, errors and codes."""
    return {(e["source"], e["target"], e["protocol"]): {"requests": e["requests"], "errors": e["errors"],
                                                       "byCode": e.get("byCode", {})}
            for e in graph["edges"]}


ISTIO_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
                    600000, 1800000, 3600000)


def _bucket(ms: float) -> tuple[float, float]:
    """The Istio duration bucket (lower, upper] that holds ``ms``, with 1 % for the sketch's own accuracy."""
    low = 0.0
    for high in ISTIO_BUCKETS_MS:
        if ms <= high * 1.01:
            return low, high
        low = high
    return low, float("inf")


def _union(*graphs: dict) -> dict[tuple, dict]:
    """The edges of several Sextants' graphs together: an edge two of them draw adds up."""
    total: dict[tuple, dict] = {}
    for graph in graphs:
        for key, edge in _edges(graph).items():
            into = total.setdefault(key, {"requests": 0, "errors": 0, "byCode": {}})
            into["requests"] += edge["requests"]
            into["errors"] += edge["errors"]
            for code, n in edge["byCode"].items():
                into["byCode"][code] = into["byCode"].get(code, 0) + n
    return total


def test_a_split_mesh_remote_written_and_queried_back(mesh_run, tmp_path):
    need(VICTORIA_BIN)
    need(PROMETHEUS_BIN)
    vm_port, prom_port = free_ports(2)
    receivers = [victoria(tmp_path / "vm", vm_port), prometheus(tmp_path / "prom", prom_port)]
    writes = ("--remote-write-url", f"http://127.0.0.1:{vm_port}/api/v1/write",
              "--remote-write-url", f"http://127.0.0.1:{prom_port}/api/v1/write",
              "--remote-write-interval", "1s", "--pairing-grace", "1")
    names = sorted(mesh_run.access_logs, key=list(mesh_run.workloads).index)
    halves = {"east": names[0::2], "west": names[1::2]}
    sextants: list[Sextant] = []
    try:
        for shard, workloads in halves.items():
            sextant = Sextant(f"split-{shard}", tmp_path / shard, extra_args=writes + ("--external-label", f"shard={shard}"))
            sextant.start()
            sextants.append(sextant)
            for name in workloads:
                response = sextant.post_access_log(mesh_run.node_ids[name], mesh_run.access_logs[name].read_bytes())
                assert response.status == 200 and response.json()["rejected"] == 0, response.describe()
        local = [wait_until_settled(lambda s=s: s.graph("1h"), quiet_s=3, timeout_s=30)[0] for s in sextants]

        def exposed(sextant: Sextant) -> int:
            return sum(1 for line in sextant.get("/metrics").text.splitlines() if line.startswith("istio_requests_total{"))

        series = sum(exposed(s) for s in sextants)
        for port in (vm_port, prom_port):
            # Every call each workload received, counted by its own sidecar's report, whichever Sextant got it.
            def received(port=port):
                result = query(port, 'sum by (destination_workload) (istio_requests_total{reporter="destination"})')
                return {r["metric"]["destination_workload"]: int(float(r["value"][1])) for r in result}

            expected = {name: n for name, n in mesh_run.received.items() if n}
            wait_for(lambda: received() == expected, TIMEOUT_S, 0.5, f"receiver on {port} to hold every workload's requests")
            # One series for one: each of Istio's series comes from one Sextant, under its shard label.
            count = query(port, "count(istio_requests_total)")
            assert int(float(count[0]["value"][1])) == series
            shards = query(port, "count by (shard) (istio_requests_total)")
            assert {r["metric"]["shard"] for r in shards} == set(halves)

        union = _union(*local)
        for port in (vm_port, prom_port):
            with Sextant(f"query-{port}", tmp_path / f"query-{port}",
                         extra_args=("--query-prometheus", f"http://127.0.0.1:{port}")) as viewer:
                graph = viewer.graph("1h")
                assert graph["source"]["kind"] == "prometheus"
                assert graph["source"]["latency"] == "buckets"
                assert _edges(graph) == union, (json.dumps(sorted(map(str, _edges(graph).items())), indent=1),
                                                json.dumps(sorted(map(str, union.items())), indent=1))
                # Latency: in the same one of Istio's buckets as the local p50 (its width is the error).
                local_edges = {(e["source"], e["target"], e["protocol"]): e for g in local for e in g["edges"]}
                for edge in graph["edges"]:
                    mine = local_edges.get((edge["source"], edge["target"], edge["protocol"]))
                    if mine and edge.get("latencyMs") and mine.get("latencyMs"):
                        low, high = _bucket(mine["latencyMs"]["p50"])
                        assert low * 0.98 <= edge["latencyMs"]["p50"] <= high * 1.02, (edge, mine)
                # The signals, the range and the diff read the same series.
                signals = viewer.get_json("/api/v1/signals", {"by": "workload", "window": "1h"})
                assert signals["source"]["kind"] == "prometheus"
                by_name = {item["name"]: item["requests"] for item in signals["items"]}
                assert by_name["productpage-v1"] == mesh_run.received["productpage-v1"]
                node = next(n["id"] for n in graph["nodes"] if n.get("workload") == "productpage-v1")
                steps = viewer.get_json("/api/v1/signals/range", {"node": node, "window": "1h", "step": "5m"})
                assert sum(p["requests"] for p in steps["points"]) == steps["total"]["requests"] \
                    == mesh_run.received["productpage-v1"]
                diff = viewer.get_json("/api/v1/diff", {"window": "1h"})
                assert diff["source"]["kind"] == "prometheus"
                # The page is served in query mode too.
                assert viewer.get("/").status == 200
    finally:
        for sextant in sextants:
            sextant.stop()
        stop_processes(receivers, grace_s=10)


def _metric(sextant: Sextant, name: str, **labels: str) -> float:
    """The sum of ``/metrics`` samples named ``name`` carrying ``labels``."""
    samples = parse_exposition(sextant.get("/metrics").text)
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def _post_fixture_spans(sextant: Sextant) -> set[str]:
    trace_ids = set()
    for path in sorted(ZIPKIN_FIXTURES.glob("batch-*.json")):
        body = path.read_bytes()
        response = http_request("POST", f"{sextant.zipkin_url}/api/v2/spans", body=body,
                                headers={"Content-Type": "application/json"})
        assert response.status == 202, response.describe()
        trace_ids |= {span["traceId"] for span in json.loads(body)}
    return trace_ids


def _trace(sextant: Sextant, trace_id: str) -> list[dict] | None:
    response = http_request("GET", f"{sextant.zipkin_url}/api/v2/trace/{trace_id}")
    if response.status != 200:
        return None
    return sorted(response.json(), key=lambda s: (s["id"], s.get("kind", "")))


def _missing(source: Sextant, target: Sextant, trace_ids: set[str]) -> list[str]:
    """The traces the target does not show as the source does."""
    return [t for t in sorted(trace_ids) if _trace(target, t) is None or _trace(target, t) != _trace(source, t)]


def _wait_whole(source: Sextant, target: Sextant, trace_ids: set[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while (missing := _missing(source, target, trace_ids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not missing, (f"{len(missing)} of {len(trace_ids)} traces not whole on the target, e.g. {missing[0]}: "
                         f"source {_trace(source, missing[0])}, target {_trace(target, missing[0])}")


def test_spans_forwarded_over_otlp_http_arrive_whole(tmp_path):
    with Sextant("otlp-target", tmp_path / "target", extra_args=KEEP) as target:
        with Sextant("otlp-source", tmp_path / "source",
                     extra_args=KEEP + ("--otlp-export-endpoint", target.otlp_http_url)) as source:
            trace_ids = _post_fixture_spans(source)
            _wait_whole(source, target, trace_ids)
            assert _metric(source, "sextant_otlp_export_records_total", signal="traces", outcome="sent") > 0
            assert _metric(source, "sextant_otlp_export_records_total", signal="traces", outcome="dropped") == 0


def test_otlp_export_outlives_an_outage_and_a_sigkill(tmp_path):
    (grpc_port,) = free_ports(1)
    args = KEEP + ("--otlp-export-endpoint", f"http://127.0.0.1:{grpc_port}", "--otlp-export-protocol", "grpc")
    first = Sextant("otlp-outage", tmp_path / "source", extra_args=args)
    first.start()
    # Nobody listens yet: the spans wait in the queue on disk.
    trace_ids = _post_fixture_spans(first)
    wait_for(lambda: _metric(first, "sextant_otlp_export_queue_requests", signal="traces") > 0
             and _metric(first, "sextant_otlp_export_records_total", signal="traces", outcome="retried") > 0,
             TIMEOUT_S, 0.5, "the spans to wait in the queue")
    first.process.kill()
    first.process.wait(timeout=10)
    target = Sextant("otlp-late-target", tmp_path / "target", extra_args=KEEP + ("--grpc-port", str(grpc_port)))
    target.start()
    second = Sextant("otlp-outage", tmp_path / "source", extra_args=args)
    second.start()
    try:
        _wait_whole(second, target, trace_ids)
        assert _metric(second, "sextant_otlp_export_queue_requests", signal="traces") == 0
    finally:
        second.stop()
        target.stop()
