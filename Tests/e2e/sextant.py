"""Start, stop and talk to a real ``sextant`` binary for the end-to-end tests.

The binary is ``$SEXTANT_BIN`` or, by default, ``<repo>/.build/debug/sextant``.
Each instance gets its own data directory and free ports on 127.0.0.1 (HTTP
API, Zipkin, gRPC, OTLP/HTTP, statsd); its stderr (and stdout) go to files
that the tests print when something fails. An instance can also scrape
Prometheus text targets (``scrape_targets``, ``--scrape``), and take further
``serve`` flags (``extra_args``); with ``--tls-cert-file`` its TCP listeners
speak TLS and the helpers go through ``ssl_context``.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mesh import REPO_ROOT, UNKNOWN, free_ports, spawn, stop_processes

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


class SextantError(RuntimeError):
    pass


class _ExitedEarly(SextantError):
    pass


def sextant_binary() -> Path:
    explicit = os.environ.get("SEXTANT_BIN")
    return Path(explicit) if explicit else REPO_ROOT / ".build" / "debug" / "sextant"


class HttpResponse:
    def __init__(self, method: str, url: str, status: int, headers: dict, body: bytes) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise SextantError(f"{self.describe()}: body is not JSON ({err})") from None

    def describe(self, limit: int = 2000) -> str:
        text = self.text
        if len(text) > limit:
            text = text[:limit] + f"... ({len(self.body)} bytes)"
        return f"{self.method} {self.url} -> {self.status}: {text}"


def http_request(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None) -> HttpResponse:
    """One HTTP request without any proxy; HTTP errors are returned, not raised.

    An ``https`` URL is checked with ``ssl_context`` (default: the system's trust store).
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ssl_context))
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            return HttpResponse(method, url, response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as err:
        return HttpResponse(method, url, err.code, dict(err.headers or {}), err.read())


class Sextant:
    """One ``sextant serve`` process."""

    instances: list["Sextant"] = []  # every instance ever started, for failure reports

    def __init__(self, name: str, workdir: Path, binary: Path | None = None, *,
                 scrape_targets: tuple[str, ...] = (), scrape_interval_s: float | None = None,
                 extra_args: tuple[str, ...] = (), ssl_context: ssl.SSLContext | None = None) -> None:
        """``scrape_targets``: URLs passed as ``--scrape``, every ``scrape_interval_s`` seconds.

        ``extra_args``: further ``serve`` flags; when they turn on TLS, ``ssl_context`` is the
        client side the helpers (``/readyz`` included) use on the HTTP ports.
        """
        self.name = name
        self.extra_args = tuple(extra_args)
        self.ssl_context = ssl_context
        self.scheme = "https" if "--tls-cert-file" in self.extra_args else "http"
        self.scrape_targets = tuple(scrape_targets)
        self.scrape_interval_s = scrape_interval_s
        self.workdir = Path(workdir)
        self.binary = Path(binary) if binary else sextant_binary()
        self.data_dir = self.workdir / "data"
        self.stderr_path = self.workdir / "stderr.log"
        self.stdout_path = self.workdir / "stdout.log"
        self.http_port = 0
        self.zipkin_port = 0
        self.grpc_port = 0  # gRPC receivers: Envoy ALS, OTLP traces and logs (HTTP/2 cleartext)
        self.otlp_http_port = 0  # OTLP/HTTP: POST /v1/traces, /v1/logs
        self.statsd_port = 0  # UDP
        self.process: subprocess.Popen | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> "Sextant":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def zipkin_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.zipkin_port}"

    @property
    def otlp_http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.otlp_http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, attempts: int = 2) -> None:
        """Start ``sextant serve`` and wait for ``/readyz``.

        A process that exits before it is ready is started once more on new
        ports (a port chosen free may have been taken meanwhile); one that
        stays up but is not ready within 60 s is not.
        """
        if not self.binary.exists():
            raise SextantError(f"sextant binary not found at {self.binary}: build it (swift build) "
                               f"or set SEXTANT_BIN")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return
            except _ExitedEarly as err:
                if attempt == attempts:
                    raise SextantError(str(err)) from None

    def _start_once(self) -> None:
        self.http_port, self.zipkin_port, self.grpc_port, self.otlp_http_port = free_ports(4)
        self.statsd_port = free_udp_port()
        argv = [
            str(self.binary), "serve",
            "--data-dir", str(self.data_dir),
            "--listen", "127.0.0.1",
            "--http-port", str(self.http_port),
            "--zipkin-port", str(self.zipkin_port),
            "--grpc-port", str(self.grpc_port),
            "--otlp-http-port", str(self.otlp_http_port),
            "--statsd-port", str(self.statsd_port),
        ]
        for target in self.scrape_targets:
            argv += ["--scrape", target]
        if self.scrape_interval_s is not None:
            argv += ["--scrape-interval", f"{self.scrape_interval_s:g}"]
        argv += self.extra_args
        self.process = spawn(argv, self.stdout_path, stderr_path=self.stderr_path)
        if self not in Sextant.instances:
            Sextant.instances.append(self)
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while True:
            if self.process.poll() is not None:
                raise _ExitedEarly(f"sextant {self.name} exited with {self.process.returncode} before "
                                   f"it was ready: {' '.join(argv)}\n{self.report()}")
            try:
                response = http_request("GET", f"{self.base_url}/readyz", timeout=2, ssl_context=self.ssl_context)
                if response.status == 200:
                    return
                last = response.describe(300)
            except OSError as err:
                last = repr(err)
            if time.monotonic() >= deadline:
                self.stop()
                raise SextantError(f"sextant {self.name} not ready after {READY_TIMEOUT_S:.0f} s "
                                   f"(last: {last})\n{self.report()}")
            time.sleep(0.2)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
        if self.process is None:
            return None
        stop_processes([self.process], grace_s=STOP_GRACE_S)
        return self.process.returncode

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stderr_text(self, tail_lines: int = 200) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-tail_lines:])

    def report(self) -> str:
        state = "running" if self.running() else f"exit code {self.process.returncode if self.process else None}"
        return (f"--- sextant {self.name} ({state}; http {self.http_port}, zipkin {self.zipkin_port}, "
                f"grpc {self.grpc_port}, otlp-http {self.otlp_http_port}, statsd/udp {self.statsd_port}, "
                f"data {self.data_dir}) stderr, last lines ---\n{self.stderr_text()}")

    # -- API ---------------------------------------------------------------

    def get(self, path: str, params: dict | list | None = None, timeout: float = 30.0) -> HttpResponse:
        query = f"?{urllib.parse.urlencode(params, doseq=True)}" if params else ""
        return http_request("GET", f"{self.base_url}{path}{query}", timeout=timeout, ssl_context=self.ssl_context)

    def get_json(self, path: str, params: dict | list | None = None):
        response = self.get(path, params)
        if response.status != 200:
            raise SextantError(response.describe())
        return response.json()

    def graph(self, window: str = "15m") -> dict:
        return self.get_json("/api/v1/graph", {"graphType": "workload", "window": window})

    def signals(self, by: str = "workload", window: str = "15m", name: str | None = None) -> dict:
        params = {"by": by, "window": window}
        if name is not None:
            params["name"] = name
        return self.get_json("/api/v1/signals", params)

    def post_access_log(self, node_id: str, body: bytes) -> HttpResponse:
        query = urllib.parse.urlencode({"node": node_id})
        return http_request("POST", f"{self.base_url}/api/v1/accesslogs?{query}", body=body,
                            headers={"Content-Type": "application/x-ndjson"}, timeout=60)

    def post_otlp(self, path: str, body: bytes, content_type: str, gzip_body: bool = False,
                  timeout: float = 30.0) -> HttpResponse:
        """``POST <path>`` (``/v1/traces``, ``/v1/logs``) on the OTLP/HTTP port."""
        headers = {"Content-Type": content_type}
        if gzip_body:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return http_request("POST", f"{self.otlp_http_url}{path}", body=body, headers=headers, timeout=timeout)

    # -- ingested metric series ---------------------------------------------

    def series(self, *matches: str) -> list[dict[str, str]]:
        """``GET /api/v1/series?match[]=...``: the label sets (``__name__`` included) of matching series."""
        answer = self.get_json("/api/v1/series", [("match[]", m) for m in matches])
        if answer.get("status") != "success" or not isinstance(answer.get("data"), list):
            raise SextantError(f"GET /api/v1/series {matches}: unexpected answer {str(answer)[:1000]}")
        return answer["data"]

    def query_range(self, match: str, start: float, end: float, step: str | None = None) -> list[dict]:
        """``GET /api/v1/query_range?match=...&start=...&end=...``: the matrix' ``result`` list."""
        params = {"match": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        if step is not None:
            params["step"] = step
        answer = self.get_json("/api/v1/query_range", params)
        data = answer.get("data") or {}
        if answer.get("status") != "success" or data.get("resultType") != "matrix":
            raise SextantError(f"GET /api/v1/query_range {params}: unexpected answer {str(answer)[:1000]}")
        return data.get("result") or []

    def federate(self, *matches: str) -> list["Sample"]:
        """``GET /federate?match[]=...``, parsed."""
        response = self.get("/federate", [("match[]", m) for m in matches])
        if response.status != 200:
            raise SextantError(response.describe())
        return parse_exposition(response.text)

    def self_metric(self, name: str) -> float | None:
        """The sum of every ``/metrics`` sample named ``name`` (None: no such sample)."""
        response = self.get("/metrics")
        if response.status != 200:
            raise SextantError(response.describe())
        values = [s.value for s in parse_exposition(response.text) if s.name == name]
        return sum(values) if values else None

    def send_statsd(self, datagrams: list[bytes]) -> None:
        """Each element as one UDP datagram to the statsd port."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for datagram in datagrams:
                s.sendto(datagram, ("127.0.0.1", self.statsd_port))

    def remote_write(self, body: bytes, content_encoding: str | None = "snappy") -> HttpResponse:
        """``POST /api/v1/write`` with the headers Prometheus sends (remote write 1.0)."""
        headers = {"Content-Type": "application/x-protobuf", "X-Prometheus-Remote-Write-Version": "0.1.0",
                   "User-Agent": "sextant-e2e"}
        if content_encoding is not None:
            headers["Content-Encoding"] = content_encoding
        return http_request("POST", f"{self.base_url}/api/v1/write", body=body, headers=headers)

    def import_files(self, node_id: str, files: list[Path], timeout: float = 120.0) -> subprocess.CompletedProcess:
        """``sextant import --data-dir <this instance's data dir> --node NODE FILE...``."""
        argv = [str(self.binary), "import", "--data-dir", str(self.data_dir), "--node", node_id]
        argv += [str(f) for f in files]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def free_udp_port() -> int:
    """A free UDP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Prometheus text exposition


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None

    def __str__(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{labels}}} {self.value!r} {self.timestamp_ms}"


_SAMPLE_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$')
_LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(value: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: _ESCAPES[m.group(0)], value)


def parse_exposition(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition (0.0.4); comments skipped, a line that does not parse raises."""
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE_LINE.match(line)
        if not match:
            raise SextantError(f"exposition line {number} does not parse: {line[:300]!r}")
        labels: dict[str, str] = {}
        body = (match.group(2) or "").strip()
        position = 0
        while position < len(body):
            pair = _LABEL_PAIR.match(body, position)
            if not pair or pair.end() == position:
                raise SextantError(f"exposition line {number}: labels do not parse: {line[:300]!r}")
            labels[pair.group(1)] = _unescape(pair.group(2))
            position = pair.end()
        value = float(match.group(3))  # Go's and Python's float syntax agree on +Inf, -Inf, NaN
        timestamp = int(match.group(4)) if match.group(4) else None
        samples.append(Sample(match.group(1), labels, value, timestamp))
    return samples


# --------------------------------------------------------------------------
# Reading the graph


def node_workloads(graph: dict) -> dict[str, str]:
    """Node id -> workload name (``unknown`` for the caller without sidecar).

    A node that is neither a workload nor the unknown node is named
    ``<type>:<id>`` so that it shows up in comparisons instead of vanishing.
    """
    result = {}
    for node in graph.get("nodes", []):
        node_type = node.get("type")
        if node_type == "unknown":
            result[node["id"]] = node.get("workload") or UNKNOWN
        elif node_type == "workload" and node.get("workload"):
            result[node["id"]] = node["workload"]
        else:
            result[node["id"]] = f"<{node_type}:{node.get('id')}>"
    return result


def edges_by_workload(graph: dict) -> dict[tuple[str, str], dict]:
    """``{(source workload, target workload): edge}``, mapped through the nodes list."""
    names = node_workloads(graph)
    result: dict[tuple[str, str], dict] = {}
    for edge in graph.get("edges", []):
        key = (names.get(edge["source"], f"<missing node {edge['source']}>"),
               names.get(edge["target"], f"<missing node {edge['target']}>"))
        if key in result:
            raise SextantError(f"graph has two edges {key[0]} -> {key[1]}: {result[key]} and {edge}")
        result[key] = edge
    return result


COUNT_FIELDS = ("requests", "errors", "serverErrors")


def edge_counts(graph: dict) -> dict[tuple[str, str], dict[str, int]]:
    """The graph's edges reduced to the fields compared with the ground truth."""
    return {key: {f: edge.get(f) for f in COUNT_FIELDS} for key, edge in edges_by_workload(graph).items()}


def graph_fingerprint(graph: dict):
    """What must stay the same for a graph to count as settled (counts, nodes, sources)."""
    edges = edges_by_workload(graph)
    return (
        sorted(node_workloads(graph).values()),
        sorted((key, tuple(edge.get(f) for f in COUNT_FIELDS), tuple(sorted(edge.get("sources") or [])))
               for key, edge in edges.items()),
    )


def wait_until_settled(fetch, quiet_s: float = 3.0, timeout_s: float = 30.0, not_before: float = 0.0,
                       interval_s: float = 0.5, fingerprint=graph_fingerprint):
    """Poll ``fetch()`` until its fingerprint has not changed for ``quiet_s`` seconds.

    Never returns before the wall-clock time ``not_before``. Returns
    ``(value, settled)``; on timeout ``settled`` is False and ``value`` is
    the last one fetched, so the caller's assertion shows what was there.
    """
    start = time.monotonic()
    last_print = None
    last_change = time.monotonic()
    value = None
    while True:
        value = fetch()
        print_ = fingerprint(value)
        now = time.monotonic()
        if print_ != last_print:
            last_print = print_
            last_change = now
        elif now - last_change >= quiet_s and time.time() >= not_before:
            return value, True
        if now - start >= timeout_s:
            return value, False
        time.sleep(interval_s)


def wait_until_all_settled(fetches: dict, **kwargs) -> dict:
    """``wait_until_settled`` for several instances at once: ``{name: fetch}`` -> ``{name: (value, settled)}``."""
    if not fetches:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(fetches)) as pool:
        futures = {name: pool.submit(wait_until_settled, fetch, **kwargs) for name, fetch in fetches.items()}
        return {name: future.result() for name, future in futures.items()}
