"""End-to-end: a real Envoy mesh reports to real sextant instances.

The service graph must count every edge exactly like the apps themselves
counted their traffic, whether sextant learnt it from Zipkin spans only
(instance A before any upload), from access-log files only (instance B), or
from both (instance A after the upload: no double counting).
"""

from __future__ import annotations

import pytest

from mesh import ENTRY_WORKLOAD, NAMESPACE, UNKNOWN, format_edges
from sextant import edge_counts, edges_by_workload, node_workloads

# case -> (source names that every edge's "sources" must contain, and must not contain)
CASES = {
    "zipkin-only": ({"spans"}, {"accesslog"}),
    "accesslog-only": ({"accesslog"}, {"spans"}),
    "zipkin-and-accesslog": ({"spans", "accesslog"}, set()),
}


@pytest.fixture(params=list(CASES))
def case(request, mesh_run):
    """(case name, graph) for each way sextant was fed."""
    name = request.param
    if name == "zipkin-only":
        graph = mesh_run.graph_spans_only
    elif name == "accesslog-only":
        graph = request.getfixturevalue("b_access_logs_only")
    else:
        graph = request.getfixturevalue("a_with_access_logs")
    return name, graph


def _diff(expected: dict, actual: dict) -> str:
    lines = []
    for key in sorted(set(expected) | set(actual)):
        want, have = expected.get(key), actual.get(key)
        if want != have:
            lines.append(f"  {key[0]} -> {key[1]}: expected {want}, sextant {have}")
    return "\n".join(lines)


def test_mesh_traffic_is_as_designed(mesh_run):
    """The harness itself: the traffic has the shape the other tests rely on."""
    truth = mesh_run.truth
    assert set(truth) == {
        (UNKNOWN, "productpage-v1"),
        ("productpage-v1", "details-v1"),
        ("productpage-v1", "reviews-v1"),
        ("productpage-v1", "reviews-v2"),
        ("productpage-v1", "reviews-v3"),
        ("reviews-v2", "ratings-v1"),
        ("reviews-v3", "ratings-v1"),
    }, format_edges(truth)
    entry = truth[(UNKNOWN, "productpage-v1")]
    assert entry["requests"] == mesh_run.traffic.sent
    assert entry["errors"] == mesh_run.traffic.not_found_sent > 0
    assert entry["serverErrors"] == 0
    ratings_5xx = sum(truth[(src, "ratings-v1")]["serverErrors"] for src in ("reviews-v2", "reviews-v3"))
    assert ratings_5xx == mesh_run.received["ratings-v1"] // 7 > 0
    for workload, lines in mesh_run.access_logs.items():
        assert lines.stat().st_size > 0, workload


def test_edge_counts_equal_ground_truth(case, mesh_run):
    name, graph = case
    actual = edge_counts(graph)
    note = "" if name != "zipkin-only" or mesh_run.spans_settled else " (graph was still changing after 30 s)"
    assert actual == mesh_run.truth, (
        f"[{name}] graph edges differ from the apps' own counts{note}:\n{_diff(mesh_run.truth, actual)}\n"
        f"ground truth:\n{format_edges(mesh_run.truth)}")


def test_edge_codes_equal_ground_truth(case, mesh_run):
    name, graph = case
    actual = {key: {str(code): n for code, n in (edge.get("byCode") or {}).items()}
              for key, edge in edges_by_workload(graph).items()}
    assert actual == mesh_run.truth_by_code, (
        f"[{name}] byCode differs from the apps' own counts:\n{_diff(mesh_run.truth_by_code, actual)}")


def test_edge_sources(case):
    name, graph = case
    required, forbidden = CASES[name]
    wrong = {
        key: edge.get("sources")
        for key, edge in edges_by_workload(graph).items()
        if not required <= set(edge.get("sources") or []) or forbidden & set(edge.get("sources") or [])
    }
    assert not wrong, (f"[{name}] every edge's sources must contain {sorted(required)}"
                       f"{' and not ' + str(sorted(forbidden)) if forbidden else ''}; wrong: {wrong}")


def test_node_set(case, mesh_run):
    name, graph = case
    nodes = graph.get("nodes", [])
    workloads = sorted(node_workloads(graph).values())
    assert workloads == sorted([UNKNOWN, *mesh_run.workloads]), f"[{name}] nodes: {nodes}"
    for node in nodes:
        if node.get("workload") == UNKNOWN:
            assert node.get("type") == "unknown", f"[{name}] {node}"
            continue
        spec = mesh_run.workloads[node["workload"]]
        assert node.get("type") == "workload", f"[{name}] {node}"
        assert node.get("namespace") == NAMESPACE, f"[{name}] {node}"
        assert node.get("app") == spec["service"], f"[{name}] {node}"
        assert node.get("version") == spec["version"], f"[{name}] {node}"


def test_reviews_versions_are_distinct_destinations(case):
    name, graph = case
    names = node_workloads(graph)
    targets = {
        edge["target"]
        for edge in graph.get("edges", [])
        if names.get(edge["source"]) == ENTRY_WORKLOAD and names.get(edge["target"], "").startswith("reviews-")
    }
    assert sorted(names[t] for t in targets) == ["reviews-v1", "reviews-v2", "reviews-v3"], (
        f"[{name}] productpage-v1 must reach three distinct reviews workload nodes; targets "
        f"{[(t, names[t]) for t in targets]}")


def test_signals_for_ratings(sextant_a, a_with_access_logs, mesh_run):
    signals = sextant_a.signals(by="workload", window="15m")
    items = [item for item in signals.get("items", []) if item.get("name") == "ratings-v1"]
    assert len(items) == 1, f"GET /api/v1/signals?by=workload&window=15m items: {signals.get('items')}"
    item = items[0]
    received = mesh_run.received["ratings-v1"]
    failures = int(mesh_run.counts["ratings-v1"]["receivedByCode"].get("500", 0))
    assert item.get("requests") == received, f"ratings-v1 received {received} requests; signals: {item}"
    assert item.get("errors") == failures, f"ratings-v1 answered 500 {failures} times; signals: {item}"
    assert (item.get("errorRate") or 0) > 0, f"ratings-v1 errorRate must be > 0; signals: {item}"
