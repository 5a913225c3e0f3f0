"""End-to-end: Envoy's own stats into sextant, through each of its metrics channels alone.

One Bookinfo mesh run (ratings-v1 answers 500 to every 7th request) feeds
four fresh sextant instances, one channel each:

    statsd           envoy.stat_sinks.statsd (UDP, counter deltas)
    metrics-service  envoy.stat_sinks.metrics_service (gRPC, emit_tags_as_labels,
                     cumulative counters); the sidecars' gRPC ALS goes here too, so
                     that /api/v1/signals has workloads to show saturation for
    otel-stats       envoy.stat_sinks.open_telemetry (OTLP/gRPC, tag-extracted names,
                     tags as attributes)
    scrape           sextant scrapes every sidecar's admin /stats/prometheus (--scrape)

All sidecars carry Istio's stats_tags and flush their sinks every second.
Each instance must then hold Envoy's ``envoy_cluster_upstream_rq`` counters
(tag-extracted as /stats/prometheus names them: labels ``cluster_name`` and
``response_code``) with exactly the values the apps counted, read back both
through ``/api/v1/series`` + ``/api/v1/query_range`` and through ``/federate``:

* caller side, cluster ``outbound|9080||ratings.default.svc.cluster.local``:
  per caller workload (reviews-v2, reviews-v3) and code, what that caller's app
  got back from ratings;
* inbound side, cluster ``inbound|9080||``: per workload and code, what each
  app answered (ratings-v1's 500s among them).

Identity: the metrics service, the OTel stats sink and the scrape name the
proxy, so their series carry ``namespace``, ``workload`` and ``pod`` (checked
against the mesh). statsd carries no identity and every sidecar sends from
127.0.0.1, so no single proxy can be told apart: the series carry
``instance="127.0.0.1"`` and no workload, all sidecars' deltas add up in one
series per cluster and code, and the expected values are the sums over all
callers (outbound) and over all workloads (inbound; the 500s are all
ratings-v1's, the only workload that answers 500).
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mesh import NAMESPACE, SERVICE_PORT, UNKNOWN, Mesh, TrafficResult, format_edges, service_fqdn
from sextant import Sextant, SextantError

MESH_REQUESTS = int(os.environ.get("SEXTANT_E2E_REQUESTS", "150"))
FLUSH_S = 1  # the sidecars' stats_flush_interval, and the scrape interval
NOT_BEFORE_S = 2 * FLUSH_S + 0.5  # after the traffic: a couple of flushes
WAIT_TIMEOUT_S = 30.0

METRIC = "envoy_cluster_upstream_rq"
RATINGS_CLUSTER = f"outbound|{SERVICE_PORT}||{service_fqdn('ratings')}"
INBOUND_CLUSTER = f"inbound|{SERVICE_PORT}||"
SINKS = ("statsd", "metrics-service", "otel-stats", "scrape")
STATSD_SENDER = "instance=127.0.0.1"
READS = ("series+query_range", "federate")
SATURATION_WORKLOAD = "ratings-v1"


def selector(cluster: str) -> str:
    return f'{METRIC}{{cluster_name="{cluster}"}}'


def who(labels: dict[str, str]) -> str:
    """The reporting proxy as a series names it: ``<namespace>/<workload>/<pod>`` or ``instance=<ip>``."""
    if "workload" in labels or "pod" in labels or "namespace" in labels:
        return f"{labels.get('namespace', '?')}/{labels.get('workload', '?')}/{labels.get('pod', '?')}"
    if "instance" in labels:
        return f"instance={labels['instance']}"
    return f"<no identity labels: {sorted(labels)}>"


@dataclass
class MetricsRun:
    traffic: TrafficResult
    counts: dict[str, dict]
    truth_by_code: dict  # {(source, destination): {"<code>": n}}
    pods: dict[str, str]  # workload -> pod name
    expected: dict[str, dict[str, dict]]  # sink -> cluster -> {(who, code): value}
    waited: dict[str, str]  # sink -> how the wait ended (for failure messages)
    # SATURATION_WORKLOAD's item of the metrics-service instance's /api/v1/signals and its sidecar's
    # inbound cluster stats (admin /stats), both read while the mesh was still up
    signals_item: dict | None
    signals_items: list
    inbound_stats: dict[str, int]
    udp_drops: int | None  # the host's UDP RcvbufErrors during the run (None: unknown)
    workdir: Path

    def __repr__(self) -> str:
        return f"MetricsRun(sent={self.traffic.sent}, waited={self.waited}, workdir={self.workdir})"


def udp_receive_buffer_errors() -> int | None:
    """The host's UDP ``RcvbufErrors`` (datagrams the kernel dropped for a full socket buffer; Linux only)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
        return int(dict(zip(lines[0], lines[1]))["RcvbufErrors"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def expected_values(sink: str, truth_by_code: dict, counts: dict[str, dict], pods: dict[str, str]) -> dict:
    """cluster -> {(who, response code): value} the sink's instance must hold."""
    outbound: dict[tuple[str, str], float] = {}
    for (source, destination), by_code in truth_by_code.items():
        if destination != "ratings-v1" or source == UNKNOWN:
            continue
        sender = STATSD_SENDER if sink == "statsd" else f"{NAMESPACE}/{source}/{pods[source]}"
        for code, n in by_code.items():
            outbound[(sender, code)] = outbound.get((sender, code), 0.0) + n
    inbound: dict[tuple[str, str], float] = {}
    for workload, snapshot in counts.items():
        sender = STATSD_SENDER if sink == "statsd" else f"{NAMESPACE}/{workload}/{pods[workload]}"
        for code, n in snapshot["receivedByCode"].items():
            inbound[(sender, code)] = inbound.get((sender, code), 0.0) + n
    return {RATINGS_CLUSTER: outbound, INBOUND_CLUSTER: inbound}


def by_code(samples: list[tuple[dict[str, str], float]]) -> dict[tuple[str, str], float]:
    """Values summed per (proxy, response code); series without ``response_code`` (the class ones) left out."""
    out: dict[tuple[str, str], float] = {}
    for labels, value in samples:
        if "response_code" not in labels:
            continue
        key = (who(labels), labels["response_code"])
        out[key] = out.get(key, 0.0) + value
    return out


def read_federate(instance: Sextant, cluster: str) -> tuple[dict, list[str], str]:
    """(values per (proxy, code), problems, the samples as text)."""
    samples = instance.federate(selector(cluster))
    problems = [f"/federate returned a sample the selector does not match: {s}" for s in samples
                if s.name != METRIC or s.labels.get("cluster_name") != cluster]
    detail = "\n".join(str(s) for s in samples)
    return by_code([(s.labels, s.value) for s in samples]), problems, detail


def read_api(instance: Sextant, cluster: str, start: float) -> tuple[dict, list[str], str]:
    """Newest value of each series in ``/api/v1/query_range``; the series must be those ``/api/v1/series`` lists."""
    match = selector(cluster)
    listed = instance.series(match)
    result = instance.query_range(match, start=start, end=time.time() + 1)
    notes = []
    listed_sets = sorted(sorted(labels.items()) for labels in listed)
    ranged_sets = sorted(sorted(series["metric"].items()) for series in result)
    if listed_sets != ranged_sets:
        notes.append(f"/api/v1/series lists {listed_sets}\nbut /api/v1/query_range has {ranged_sets}")
    samples = []
    for series in result:
        values = series.get("values") or []
        if not values:
            notes.append(f"no values: {series}")
            continue
        times = [v[0] for v in values]
        if times != sorted(times):
            notes.append(f"values not in time order: {series}")
        samples.append(({k: v for k, v in series["metric"].items() if k != "__name__"}, float(values[-1][1])))
    detail = "\n".join(f"{s['metric']}: last {s['values'][-1] if s.get('values') else None} "
                       f"({len(s.get('values') or [])} values)" for s in result)
    return by_code(samples), notes, detail


def diff(expected: dict, actual: dict) -> str:
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            lines.append(f"  {key[0]} code {key[1]}: expected {expected.get(key)}, sextant {actual.get(key)}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def metrics_sextants(e2e_dir, sextant_bin):
    """The statsd, metrics-service and otel-stats instances; ``metrics_run`` adds the scrape one."""
    instances: dict[str, Sextant] = {}
    try:
        for name in SINKS[:3]:
            workdir = e2e_dir / f"sextant-{name}"
            workdir.mkdir(parents=True, exist_ok=True)
            instances[name] = Sextant(name, workdir, sextant_bin)
            instances[name].start()
    except SextantError as err:
        for instance in instances.values():
            instance.stop()
        pytest.fail(str(err), pytrace=False)
    yield instances
    for instance in instances.values():
        instance.stop()


def _wait_for_values(instance: Sextant, expected: dict, not_before: float) -> str:
    """Poll the instance's ``/federate`` until it holds the expected values (or the time is up)."""
    started = time.monotonic()
    while True:
        try:
            ok = all(read_federate(instance, cluster)[0] == want for cluster, want in expected.items())
        except (SextantError, OSError):
            ok = False
        if ok and time.time() >= not_before:
            return f"values complete after {time.monotonic() - started:.1f} s"
        if time.monotonic() - started >= WAIT_TIMEOUT_S:
            return f"values still differ after {WAIT_TIMEOUT_S:.0f} s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def metrics_run(metrics_sextants, e2e_dir, sextant_bin) -> MetricsRun:
    s = metrics_sextants
    udp_errors_before = udp_receive_buffer_errors()
    with Mesh(
        workdir=e2e_dir / "mesh-metrics",
        file_logs=False,
        statsd_ports=(s["statsd"].statsd_port,),
        metrics_service_ports=(s["metrics-service"].grpc_port,),
        otel_stats_ports=(s["otel-stats"].grpc_port,),
        als_ports=(s["metrics-service"].grpc_port,),
        stats_flush_interval_s=FLUSH_S,
    ) as mesh:
        workdir = e2e_dir / "sextant-scrape"
        workdir.mkdir(parents=True, exist_ok=True)
        scrape = Sextant("scrape", workdir, sextant_bin, scrape_targets=tuple(mesh.stats_urls().values()),
                         scrape_interval_s=FLUSH_S)
        s["scrape"] = scrape  # stopped with the others
        try:
            scrape.start()
        except SextantError as err:
            pytest.fail(str(err), pytrace=False)
        traffic = mesh.drive(MESH_REQUESTS)
        counts = mesh.counts()
        truth_by_code = mesh.ground_truth_by_code(traffic, counts)
        pods = mesh.pod_names()
        expected = {sink: expected_values(sink, truth_by_code, counts, pods) for sink in SINKS}
        # The sidecars stay up until every instance has their last flush (or the time is up).
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(SINKS)) as pool:
            futures = {sink: pool.submit(_wait_for_values, s[sink], expected[sink], traffic.finished_at + NOT_BEFORE_S)
                       for sink in SINKS}
            waited = {sink: future.result() for sink, future in futures.items()}
        # Gauges are "now": read while the sidecars run (at shutdown Envoy flushes them once more,
        # with its connections closed).
        item, items, stats = _read_saturation(mesh, s["metrics-service"])
        udp_errors_after = udp_receive_buffer_errors()
        udp_drops = (None if udp_errors_before is None or udp_errors_after is None
                     else udp_errors_after - udp_errors_before)
        return MetricsRun(traffic=traffic, counts=counts, truth_by_code=truth_by_code, pods=pods,
                          expected=expected, waited=waited, signals_item=item, signals_items=items,
                          inbound_stats=stats, udp_drops=udp_drops, workdir=mesh.workdir)


def expected_saturation(stats: dict[str, int]) -> dict[str, int]:
    """``saturation.proxy`` from a sidecar's inbound cluster stats (admin ``/stats``, full names)."""
    prefix = f"cluster.{INBOUND_CLUSTER}."
    return {
        "activeRequests": stats.get(prefix + "upstream_rq_active", 0),
        "pendingRequests": stats.get(prefix + "upstream_rq_pending_active", 0),
        "activeConnections": stats.get(prefix + "upstream_cx_active", 0),
        "overflows": (stats.get(prefix + "upstream_rq_pending_overflow", 0)
                      + stats.get(prefix + "upstream_cx_overflow", 0)),
    }


def _read_saturation(mesh: Mesh, instance: Sextant) -> tuple[dict | None, list, dict[str, int]]:
    """Poll the signals until ``saturation.proxy`` agrees with the sidecar (a flush or two) or the time is up."""
    deadline = time.monotonic() + 5 * FLUSH_S + 2
    regex = rf"^cluster\.{INBOUND_CLUSTER.replace('|', '[|]')}\.upstream_(rq|cx)_"
    while True:
        stats = mesh.admin_stats(SATURATION_WORKLOAD, regex)
        items = instance.signals(by="workload", window="5m").get("items", [])
        matching = [item for item in items if item.get("name") == SATURATION_WORKLOAD]
        item = matching[0] if len(matching) == 1 else None
        proxy = ((item or {}).get("saturation") or {}).get("proxy")
        if proxy == expected_saturation(stats) or time.monotonic() >= deadline:
            return item, items, stats
        time.sleep(0.5)


def test_metrics_run_is_as_designed(metrics_run):
    """The harness: reviews-v2 and reviews-v3 call ratings, which answered some 500s and some 200s."""
    run = metrics_run
    callers = {source for (source, destination) in run.truth_by_code if destination == "ratings-v1"}
    assert callers == {"reviews-v2", "reviews-v3"}, format_edges(run.truth_by_code)
    codes: dict[str, int] = {}
    for caller in callers:
        for code, n in run.truth_by_code[(caller, "ratings-v1")].items():
            codes[code] = codes.get(code, 0) + n
    assert set(codes) == {"200", "500"} and codes["500"] > 0, codes
    assert run.counts["ratings-v1"]["receivedByCode"] == codes, (run.counts["ratings-v1"], codes)


def _check(run: MetricsRun, instance: Sextant, sink: str, cluster: str, read: str) -> None:
    expected = run.expected[sink][cluster]
    if read == "federate":
        actual, problems, detail = read_federate(instance, cluster)
    else:
        actual, problems, detail = read_api(instance, cluster, start=run.traffic.started_at - 60)
    assert actual == expected and not problems, (
        f"[{sink}, {read}] {selector(cluster)} per (proxy, response_code) differs from the apps' counts "
        f"({run.waited.get(sink)}):\n{diff(expected, actual)}\n" + "\n".join(problems)
        + f"\nexpected: {expected}\nsextant series:\n{detail}"
        + (f"\nUDP datagrams the kernel dropped on this host during the run (RcvbufErrors): {run.udp_drops}"
           if sink == "statsd" else ""))


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("sink", SINKS)
def test_caller_side_to_ratings(sink, read, metrics_sextants, metrics_run):
    """``envoy_cluster_upstream_rq{cluster_name="outbound|9080||ratings..."}`` per caller and code
    = what the callers got back."""
    _check(metrics_run, metrics_sextants[sink], sink, RATINGS_CLUSTER, read)


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("sink", SINKS)
def test_inbound_side(sink, read, metrics_sextants, metrics_run):
    """``envoy_cluster_upstream_rq{cluster_name="inbound|9080||"}`` per workload and code = what each app answered."""
    _check(metrics_run, metrics_sextants[sink], sink, INBOUND_CLUSTER, read)


def test_saturation_from_proxy_gauges(metrics_run):
    """``saturation.proxy`` of ratings-v1 (metrics-service instance, which has its ALS too) = its sidecar's
    inbound gauges, read while the mesh ran."""
    run = metrics_run
    assert run.signals_item is not None, (
        f"GET /api/v1/signals?by=workload&window=5m has no single {SATURATION_WORKLOAD} item: {run.signals_items}")
    proxy = (run.signals_item.get("saturation") or {}).get("proxy")
    expected = expected_saturation(run.inbound_stats)
    assert proxy == expected and expected["activeConnections"] > 0, (
        f"{SATURATION_WORKLOAD}: saturation.proxy {proxy}, expected {expected} from its sidecar's admin /stats "
        f"read at the same time: {run.inbound_stats}\nitem: {run.signals_item}")
