"""End-to-end: services instrumented with the OpenTelemetry Python SDK report to sextant (no Envoy).

``otel_sdk_client.py`` builds a few traces frontend -> checkout -> the
``orders`` PostgreSQL database and exports them, with log records, once over
OTLP/gRPC to instance sdk-grpc and once over OTLP/HTTP (protobuf) to
instance sdk-http. Both graphs must show frontend -> checkout with the
client's request and error counts and checkout -> a virtual ``orders``
service node. A third instance, otlp-encodings, receives one hand-made call
per OTLP/HTTP encoding (protobuf, gzip'd protobuf, JSON, gzip'd JSON).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mesh import UNKNOWN
from otlp_payloads import Call
from sextant import Sextant, SextantError, wait_until_all_settled, wait_until_settled

E2E_DIR = Path(__file__).resolve().parent
CLIENT_SCRIPT = E2E_DIR / "otel_sdk_client.py"
CLIENT_TIMEOUT_S = 120.0
SETTLE_QUIET_S = 2.0
SETTLE_TIMEOUT_S = 20.0
SHOP = "shop"
TRANSPORTS = ("grpc", "http")
ENCODINGS = {
    # name -> (content type, gzip)
    "protobuf": ("application/x-protobuf", False),
    "protobuf+gzip": ("application/x-protobuf", True),
    "json": ("application/json", False),
    "json+gzip": ("application/json", True),
}


def _start(name: str, e2e_dir: Path, binary: Path) -> Sextant:
    workdir = e2e_dir / f"sextant-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    instance = Sextant(name, workdir, binary)
    instance.start()
    return instance


@pytest.fixture(scope="module")
def sdk_sextants(e2e_dir, sextant_bin):
    instances: dict[str, Sextant] = {}
    try:
        for transport in TRANSPORTS:
            instances[transport] = _start(f"sdk-{transport}", e2e_dir, sextant_bin)
    except SextantError as err:
        for instance in instances.values():
            instance.stop()
        pytest.fail(str(err), pytrace=False)
    yield instances
    for instance in instances.values():
        instance.stop()


@pytest.fixture(scope="module")
def sdk_run(sdk_sextants) -> dict:
    """Run the SDK client once; returns its report plus each instance's settled graph."""
    grpc_instance, http_instance = sdk_sextants["grpc"], sdk_sextants["http"]
    argv = [
        sys.executable, str(CLIENT_SCRIPT),
        "--traces-grpc", grpc_instance.grpc_target,
        "--logs-grpc", grpc_instance.grpc_target,
        "--traces-http", f"{http_instance.otlp_http_url}/v1/traces",
        "--logs-http", f"{http_instance.otlp_http_url}/v1/logs",
    ]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=CLIENT_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} -> exit {result.returncode}\n{result.stderr.decode(errors='replace')[-3000:]}",
                    pytrace=False)
    report = json.loads(result.stdout)
    report["clientStderr"] = result.stderr.decode(errors="replace")[-3000:]
    settled = wait_until_all_settled({t: sdk_sextants[t].graph for t in TRANSPORTS},
                                     quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S)
    report["graphs"] = {t: settled[t][0] for t in TRANSPORTS}
    report["settled"] = {t: settled[t][1] for t in TRANSPORTS}
    return report


def _exports_of(report: dict, prefix: str) -> str:
    """The export results, HTTP responses and exporter log lines about one exporter kind."""
    lines = [f"{name}: {results}" for name, results in report["exports"].items() if name.startswith(prefix)]
    lines += [f"HTTP {r['request']} ({r['requestContentType']}) -> {r['status']} {r['contentType']}: {r['body']!r}"
              for r in report["httpResponses"] if r["exporter"].startswith(prefix)]
    lines += [f"log: {line}" for line in report["exporterLog"]]
    return "\n".join(lines)


@pytest.mark.parametrize("exporter", ["traces-grpc", "traces-http", "logs-grpc", "logs-http"])
def test_sdk_export_accepted(exporter, sdk_run):
    """Every export call of the SDK's OTLP exporters succeeds; over HTTP every answer is a 200."""
    results = {name: r for name, r in sdk_run["exports"].items() if name.startswith(exporter + "/")}
    assert len(results) == 2, f"expected one {exporter} exporter per service: {sdk_run['exports']}"
    failed = {name: r for name, r in results.items() if not r or any(x["result"] != "SUCCESS" for x in r)}
    responses = [r for r in sdk_run["httpResponses"] if r["exporter"].startswith(exporter + "/")]
    not_200 = [r for r in responses if r["status"] != 200]
    assert not failed and not not_200 and (exporter.endswith("grpc") or responses), (
        f"{exporter} exports not all accepted:\n{_exports_of(sdk_run, exporter)}")


def _nodes_by_id(graph: dict) -> dict[str, dict]:
    return {node["id"]: node for node in graph.get("nodes", [])}


def _node_name(node: dict | None) -> str:
    """frontend / checkout for workload nodes, service:<name> for virtual services, unknown."""
    if node is None:
        return "<missing node>"
    if node.get("type") == "workload":
        return node.get("workload") or f"<workload without name {node.get('id')}>"
    if node.get("type") == "service":
        return f"service:{node.get('service')}"
    if node.get("type") == "unknown":
        return UNKNOWN
    return f"<{node.get('type')}:{node.get('id')}>"


def _edges(graph: dict) -> dict[tuple[str, str], dict]:
    nodes = _nodes_by_id(graph)
    return {(_node_name(nodes.get(e["source"])), _node_name(nodes.get(e["target"]))): e
            for e in graph.get("edges", [])}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sdk_graph_edges(transport, sdk_run):
    """frontend -> checkout and checkout -> service:orders with exact counts; no other edge but unknown -> frontend."""
    truth = sdk_run["truth"]
    graph = sdk_run["graphs"][transport]
    edges = _edges(graph)
    expected = {
        ("frontend", "checkout"): truth["edges"]["frontend->checkout"],
        ("checkout", "service:orders"): truth["edges"]["checkout->orders"],
    }
    actual = {key: {f: edges[key].get(f) for f in ("requests", "errors", "serverErrors")}
              for key in expected if key in edges}
    allowed = set(expected) | {(UNKNOWN, "frontend")}
    extra = {key: {f: e.get(f) for f in ("requests", "errors", "serverErrors")}
             for key, e in edges.items() if key not in allowed}
    note = "" if sdk_run["settled"][transport] else f" (graph still changing after {SETTLE_TIMEOUT_S:.0f} s)"
    assert actual == expected and not extra, (
        f"[{transport}] expected edges {expected}\n  got {actual}\n  unexpected edges: {extra}{note}\n"
        f"graph: {json.dumps(graph)[:3000]}\nexports:\n{_exports_of(sdk_run, 'traces-' + transport)}")
    entry = edges.get((UNKNOWN, "frontend"))
    if entry is not None:
        # The root spans have no caller: if the graph shows them, it shows all of them, none failed.
        assert (entry.get("requests"), entry.get("errors")) == (truth["traces"], 0), f"[{transport}] {entry}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sdk_graph_nodes(transport, sdk_run):
    """Services are workload nodes named by service.name in namespace shop; orders is a virtual service node."""
    graph = sdk_run["graphs"][transport]
    nodes = graph.get("nodes", [])
    by_name = {_node_name(n): n for n in nodes}
    problems = []
    for name in ("frontend", "checkout"):
        node = by_name.get(name)
        if node is None:
            problems.append(f"no workload node {name}")
        elif node.get("namespace") != SHOP:
            problems.append(f"{name}: namespace {node.get('namespace')!r}, expected {SHOP!r} "
                            f"({'service.namespace' if name == 'frontend' else 'k8s.namespace.name'})")
    orders = by_name.get("service:orders")
    if orders is None:
        problems.append("no node of type 'service' with service 'orders'")
    assert not problems, f"[{transport}] " + "; ".join(problems) + f"\nnodes: {nodes}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sdk_logs_api(transport, sdk_sextants, sdk_run):
    """``GET /api/v1/logs?service=frontend`` returns frontend's log records (skipped while the API is missing)."""
    response = sdk_sextants[transport].get("/api/v1/logs", {"service": "frontend"})
    if response.status == 404:
        pytest.skip(f"no logs API yet: {response.describe(300)}")
    assert response.status == 200, response.describe()
    text = response.text
    missing = [body for body in sdk_run["truth"]["logBodies"]["frontend"] if body not in text]
    foreign = [body for body in sdk_run["truth"]["logBodies"]["checkout"] if body in text]
    assert not missing and not foreign, (
        f"[{transport}] frontend's records missing: {missing}; checkout's records returned: {foreign}\n"
        f"{response.describe(3000)}")


# --------------------------------------------------------------------------
# OTLP/HTTP encodings


@pytest.fixture(scope="module")
def encodings_sextant(e2e_dir, sextant_bin):
    try:
        instance = _start("otlp-encodings", e2e_dir, sextant_bin)
    except SextantError as err:
        pytest.fail(str(err), pytrace=False)
    yield instance
    instance.stop()


def test_otlp_http_encodings(encodings_sextant):
    """One call web -> api per encoding, each answered 200; the graph counts all of them, the failed one as a 5xx."""
    responses = {}
    calls = {}
    for i, (encoding, (content_type, gzip_body)) in enumerate(ENCODINGS.items()):
        call = Call(client="web", server="api", namespace=SHOP, http_status=503 if i == 2 else 200)
        calls[encoding] = call
        body = (call.to_proto().SerializeToString() if content_type == "application/x-protobuf"
                else json.dumps(call.to_json()).encode())
        responses[encoding] = encodings_sextant.post_otlp("/v1/traces", body, content_type, gzip_body=gzip_body)
    refused = {e: r.describe(500) for e, r in responses.items() if r.status != 200}
    assert not refused, f"POST /v1/traces not answered 200 for: {refused}"
    failed = sum(1 for c in calls.values() if c.failed)
    expected = {("web", "api"): {"requests": len(calls), "errors": failed, "serverErrors": failed}}
    graph, settled = wait_until_settled(encodings_sextant.graph, quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S)
    actual = {key: {f: e.get(f) for f in ("requests", "errors", "serverErrors")} for key, e in _edges(graph).items()}
    assert actual == expected, (f"expected {expected}, got {actual}{'' if settled else ' (not settled)'}\n"
                                f"graph: {json.dumps(graph)[:3000]}")
