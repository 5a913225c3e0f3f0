"""End-to-end: Envoy's gRPC telemetry (ALS, OpenTelemetry tracer and access logger) into sextant.

One mesh run (Bookinfo plus the TCP hop ratings-v1 -> mongodb-v1) feeds four
fresh sextant instances at once, each sidecar pointing its channels at them:

    grpc-all   gRPC ALS + OpenTelemetry access logs + OpenTelemetry traces
               (and, afterwards, the JSON access-log files: case grpc-all+files)
    als        gRPC ALS only (HTTP and TCP loggers)
    otlplogs   OpenTelemetry access logs only
    traces     OpenTelemetry traces only (the tracer reaches both grpc-all and
               traces through a tee Envoy that mirrors every Export call)

Each instance's graph must count every edge exactly as the apps counted
their traffic, list exactly the channels that carried it in ``sources``,
and, where ALS carried the TCP hop, show it as a ``tcp`` edge with the
apps' connection and byte counts.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mesh import BOOKINFO_WITH_TCP, NAMESPACE, UNKNOWN, Mesh, TrafficResult, format_edges
from sextant import (
    Sextant, SextantError, edge_counts, edges_by_workload, node_workloads, wait_until_all_settled,
    wait_until_settled,
)

MESH_REQUESTS = int(os.environ.get("SEXTANT_E2E_REQUESTS", "150"))
# ALS and the OpenTelemetry access logger flush every second, the tracer too
# (runtime override in the bootstrap): all sent 2 s after the traffic.
GRPC_FLUSH_S = 2.0
SETTLE_QUIET_S = 3.0
SETTLE_TIMEOUT_S = 30.0
METRICS_TIMEOUT_S = 20.0

INSTANCES = ("grpc-all", "als", "otlplogs", "traces")
TCP_EDGE = ("ratings-v1", "mongodb-v1")
# case -> (instance, sources of every HTTP edge, sources of the TCP edge or None: no TCP edge)
CASES = {
    "als": ("als", {"als"}, {"als"}),
    "otlplogs": ("otlplogs", {"otlplogs"}, None),
    "traces": ("traces", {"spans"}, None),
    "grpc-all": ("grpc-all", {"als", "otlplogs", "spans"}, {"als"}),
    # The files' TCP lines describe the same connections as ALS: merged, not counted twice.
    "grpc-all+files": ("grpc-all", {"als", "otlplogs", "spans", "accesslog"}, {"als", "accesslog"}),
}


@dataclass
class ChannelRun:
    traffic: TrafficResult
    counts: dict[str, dict]
    truth: dict  # HTTP edges: {(source, destination): {"requests", "errors", "serverErrors"}}
    truth_by_code: dict
    tcp_truth: dict  # {(source, destination): {"connections", "requestBytes", "responseBytes"}}
    workloads: dict[str, dict]
    graphs: dict[str, dict]  # case -> graph
    settled: dict[str, bool]  # case -> graph settled before the timeout
    tee_stats: str
    workdir: Path

    def __repr__(self) -> str:
        return f"ChannelRun(sent={self.traffic.sent}, settled={self.settled}, workdir={self.workdir})"

    def expected_edges(self, case: str) -> dict:
        """requests/errors/serverErrors of every edge the case's instance must show."""
        _, _, tcp_sources = CASES[case]
        expected = dict(self.truth)
        if tcp_sources is not None:
            for key, tcp in self.tcp_truth.items():
                expected[key] = {"requests": tcp["connections"], "errors": 0, "serverErrors": 0}
        return expected


def _diff(expected: dict, actual: dict) -> str:
    lines = []
    for key in sorted(set(expected) | set(actual)):
        want, have = expected.get(key), actual.get(key)
        if want != have:
            lines.append(f"  {key[0]} -> {key[1]}: expected {want}, sextant {have}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def channel_sextants(e2e_dir, sextant_bin):
    instances: dict[str, Sextant] = {}
    try:
        for name in INSTANCES:
            workdir = e2e_dir / f"sextant-{name}"
            workdir.mkdir(parents=True, exist_ok=True)
            instance = Sextant(name, workdir, sextant_bin)
            instances[name] = instance
            instance.start()
    except SextantError as err:
        for instance in instances.values():
            instance.stop()
        pytest.fail(str(err), pytrace=False)
    yield instances
    for instance in instances.values():
        instance.stop()


def _upload_access_logs(instance: Sextant, node_ids: dict[str, str], files: dict[str, Path]) -> list[str]:
    """POST every non-empty access-log file; returns the problems (empty when all were accepted whole)."""
    problems = []
    for name, path in files.items():
        body = path.read_bytes() if path.exists() else b""
        lines = sum(1 for line in body.splitlines() if line.strip())
        if not lines:
            continue
        response = instance.post_access_log(node_ids[name], body)
        if response.status != 200:
            problems.append(response.describe())
            continue
        answer = response.json()
        if answer.get("accepted") != lines or answer.get("rejected") != 0:
            problems.append(f"{response.describe()} (file has {lines} lines)")
    return problems


@pytest.fixture(scope="module")
def channel_run(channel_sextants, e2e_dir) -> ChannelRun:
    s = channel_sextants
    with Mesh(
        specs=BOOKINFO_WITH_TCP,
        workdir=e2e_dir / "mesh-grpc",
        otel_trace_ports=(s["grpc-all"].grpc_port, s["traces"].grpc_port),
        als_ports=(s["grpc-all"].grpc_port, s["als"].grpc_port),
        otel_log_ports=(s["grpc-all"].grpc_port, s["otlplogs"].grpc_port),
        file_logs=True,
    ) as mesh:
        traffic = mesh.drive(MESH_REQUESTS)
        counts = mesh.counts()
        truth = mesh.ground_truth(traffic, counts)
        truth_by_code = mesh.ground_truth_by_code(traffic, counts)
        tcp_truth = mesh.tcp_ground_truth(counts)
        access_logs = mesh.wait_for_access_logs(counts)
        # The sidecars stay up until sextant has everything they send.
        settled = wait_until_all_settled(
            {name: instance.graph for name, instance in s.items()},
            quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S, not_before=traffic.finished_at + GRPC_FLUSH_S)
        tee_stats = mesh.tee_stats()
        node_ids = mesh.node_ids()
        workloads = {name: {"service": w.service, "version": w.spec.version} for name, w in mesh.workloads.items()}
        workdir = mesh.workdir
    graphs = {case: settled[instance][0] for case, (instance, _, _) in CASES.items() if case != "grpc-all+files"}
    settled_by_case = {case: settled[instance][1] for case, (instance, _, _) in CASES.items()
                       if case != "grpc-all+files"}
    # Then the JSON access-log files of the same run go to grpc-all as well.
    problems = _upload_access_logs(s["grpc-all"], node_ids, access_logs)
    if problems:
        pytest.fail("access log upload to grpc-all not accepted as a whole:\n" + "\n".join(problems), pytrace=False)
    graphs["grpc-all+files"], settled_by_case["grpc-all+files"] = wait_until_settled(
        s["grpc-all"].graph, quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S)
    return ChannelRun(traffic=traffic, counts=counts, truth=truth, truth_by_code=truth_by_code,
                      tcp_truth=tcp_truth, workloads=workloads, graphs=graphs, settled=settled_by_case,
                      tee_stats=tee_stats, workdir=workdir)


@pytest.fixture(params=list(CASES))
def case(request, channel_run):
    return request.param, channel_run.graphs[request.param]


def _note(run: ChannelRun, name: str) -> str:
    notes = []
    if not run.settled[name]:
        notes.append(f"graph was still changing after {SETTLE_TIMEOUT_S:.0f} s")
    if CASES[name][0] == "traces":
        notes.append(f"the OTLP tee's counters (every Export mirrored to traces):\n{run.tee_stats}")
    return ("\n" + "\n".join(notes)) if notes else ""


def test_channel_run_is_as_designed(channel_run):
    """The harness: the run's traffic has the shape the other tests rely on, TCP hop included."""
    run = channel_run
    assert set(run.truth) == {
        (UNKNOWN, "productpage-v1"),
        ("productpage-v1", "details-v1"),
        ("productpage-v1", "reviews-v1"),
        ("productpage-v1", "reviews-v2"),
        ("productpage-v1", "reviews-v3"),
        ("reviews-v2", "ratings-v1"),
        ("reviews-v3", "ratings-v1"),
    }, format_edges(run.truth)
    assert run.truth[(UNKNOWN, "productpage-v1")]["requests"] == run.traffic.sent
    assert run.truth[(UNKNOWN, "productpage-v1")]["errors"] == run.traffic.not_found_sent > 0
    assert sum(run.truth[(s, "ratings-v1")]["serverErrors"] for s in ("reviews-v2", "reviews-v3")) > 0
    assert set(run.tcp_truth) == {TCP_EDGE}, format_edges(run.tcp_truth)
    tcp = run.tcp_truth[TCP_EDGE]
    # One connection per request ratings-v1 handled; the answers are longer than the requests.
    assert tcp["connections"] == run.counts["ratings-v1"]["received"] > 0, tcp
    assert 0 < tcp["requestBytes"] < tcp["responseBytes"], tcp


def test_edge_counts_equal_ground_truth(case, channel_run):
    name, graph = case
    expected = channel_run.expected_edges(name)
    actual = edge_counts(graph)
    assert actual == expected, (
        f"[{name}] graph edges differ from the apps' own counts:\n{_diff(expected, actual)}\n"
        f"ground truth:\n{format_edges(expected)}{_note(channel_run, name)}")


def test_edge_codes_equal_ground_truth(case, channel_run):
    name, graph = case
    actual = {key: {str(code): n for code, n in (edge.get("byCode") or {}).items()}
              for key, edge in edges_by_workload(graph).items() if key not in channel_run.tcp_truth}
    assert actual == channel_run.truth_by_code, (
        f"[{name}] byCode of the HTTP edges differs from the apps' own counts:\n"
        f"{_diff(channel_run.truth_by_code, actual)}{_note(channel_run, name)}")


def test_edge_sources(case, channel_run):
    name, graph = case
    _, http_sources, tcp_sources = CASES[name]
    wrong = {}
    for key, edge in edges_by_workload(graph).items():
        want = tcp_sources if key in channel_run.tcp_truth else http_sources
        have = set(edge.get("sources") or [])
        if want is None or have != want:
            wrong[key] = {"sources": edge.get("sources"), "expected": sorted(want) if want else "no such edge"}
    assert not wrong, f"[{name}] every edge's sources must be exactly the channels that carried it; wrong: {wrong}"


def test_node_set(case, channel_run):
    name, graph = case
    expected = {w for key in channel_run.expected_edges(name) for w in key}
    nodes = graph.get("nodes", [])
    assert sorted(node_workloads(graph).values()) == sorted(expected), f"[{name}] nodes: {nodes}"
    for node in nodes:
        if node.get("workload") == UNKNOWN:
            assert node.get("type") == "unknown", f"[{name}] {node}"
            continue
        spec = channel_run.workloads[node["workload"]]
        assert node.get("type") == "workload", f"[{name}] {node}"
        assert node.get("namespace") == NAMESPACE, f"[{name}] {node}"
        assert node.get("app") == spec["service"], f"[{name}] {node}"
        assert node.get("version") == spec["version"], f"[{name}] {node}"


@pytest.mark.parametrize("name", [c for c, (_, _, tcp) in CASES.items() if tcp is not None])
def test_tcp_edge(name, channel_run):
    """ratings-v1 -> mongodb-v1: protocol tcp, one request per connection, the bytes the app sent and got."""
    graph = channel_run.graphs[name]
    edge = edges_by_workload(graph).get(TCP_EDGE)
    tcp = channel_run.tcp_truth[TCP_EDGE]
    assert edge is not None, (f"[{name}] no edge {TCP_EDGE[0]} -> {TCP_EDGE[1]}; edges: "
                              f"{sorted(edges_by_workload(graph))}{_note(channel_run, name)}")
    actual = {k: edge.get(k) for k in ("protocol", "requests", "requestBytes", "responseBytes")}
    expected = {"protocol": "tcp", "requests": tcp["connections"], "requestBytes": tcp["requestBytes"],
                "responseBytes": tcp["responseBytes"]}
    assert actual == expected, f"[{name}] TCP edge {actual}, apps counted {expected}; edge: {edge}"


# --------------------------------------------------------------------------
# Istio's TCP metrics on /metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
REPORTERS = {"source", "destination"}
TCP_METRICS = {
    # metric -> field of the TCP ground truth it must add up to (per reporter)
    "istio_tcp_connections_opened_total": "connections",
    "istio_tcp_connections_closed_total": "connections",
    "istio_tcp_received_bytes_total": "requestBytes",  # bytes received during the request (client -> server)
    "istio_tcp_sent_bytes_total": "responseBytes",  # bytes sent during the response (server -> client)
}


def _tcp_metric_totals(text: str) -> dict[str, dict[str, float]]:
    """metric -> reporter -> sum over the series ratings-v1 -> mongodb-v1."""
    totals: dict[str, dict[str, float]] = {name: {} for name in TCP_METRICS}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) not in TCP_METRICS:
            continue
        labels = dict(_LABEL.findall(match.group(2) or ""))
        if (labels.get("source_workload"), labels.get("destination_workload")) != TCP_EDGE:
            continue
        reporter = labels.get("reporter", "")
        by_reporter = totals[match.group(1)]
        by_reporter[reporter] = by_reporter.get(reporter, 0.0) + float(match.group(3))
    return totals


@pytest.mark.parametrize("instance", ["als", "grpc-all"])
def test_tcp_metrics(instance, channel_sextants, channel_run):
    """/metrics has Istio's four TCP counters for ratings-v1 -> mongodb-v1 from both reporters, each exact.

    Both sidecars log every connection (ratings-v1's outbound tcp_proxy: reporter
    source; mongodb-v1's inbound one: reporter destination).
    """
    tcp = channel_run.tcp_truth[TCP_EDGE]
    sextant = channel_sextants[instance]
    expected_value = {metric: float(tcp[field]) for metric, field in TCP_METRICS.items()}

    def problems_of(totals: dict) -> list[str]:
        problems = []
        for metric, by_reporter in totals.items():
            if set(by_reporter) != REPORTERS:
                problems.append(f"{metric}: series with source_workload={TCP_EDGE[0]}, "
                                f"destination_workload={TCP_EDGE[1]} have reporters {sorted(by_reporter)}, "
                                f"expected {sorted(REPORTERS)}")
            for reporter, value in by_reporter.items():
                if value != expected_value[metric]:
                    problems.append(f"{metric}{{reporter={reporter!r}}} = {value:g}, expected "
                                    f"{expected_value[metric]:g}")
        return problems

    deadline = time.monotonic() + METRICS_TIMEOUT_S
    while True:
        response = sextant.get("/metrics")
        assert response.status == 200, response.describe()
        problems = problems_of(_tcp_metric_totals(response.text))
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(1)
    tcp_lines = [line for line in response.text.splitlines() if line.startswith("istio_tcp_")]
    assert not problems, (f"[{instance}] GET /metrics after {METRICS_TIMEOUT_S:.0f} s:\n  " + "\n  ".join(problems)
                          + f"\nTCP truth: {tcp}\nistio_tcp_* lines ({len(tcp_lines)}):\n"
                          + "\n".join(tcp_lines[:40]))
