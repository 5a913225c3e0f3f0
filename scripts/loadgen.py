#!/usr/bin/env python3
"""Load generator for Sextant's HTTP ingest: Zipkin v2 spans and Istio JSON access-log lines.

The traffic imitates what Envoy 1.40 sidecars of a Bookinfo mesh send (see the
fixtures described in the shared `fixtures/envoy/README.md`): six workloads
(productpage-v1, details-v1, reviews-v1/v2/v3, ratings-v1), Istio node ids
`sidecar~127.0.0.1~<pod>.default~default.svc.cluster.local`, clusters
`outbound|9080||<svc>.default.svc.cluster.local` / `inbound|9080||`, the same
span tags and access-log keys as Envoy writes them, every 10th ratings call
answering 500 and one request in 50 being a 404. Each simulated call yields a
CLIENT span + outbound log line on the caller's sidecar and a SERVER span +
inbound log line on the callee's sidecar; both sides share `x-request-id`, the
trace, and the connection addresses (`upstream_local_address` of the caller =
`downstream_remote_address` of the callee).

Usage:
    python3 scripts/loadgen.py [--sextant-bin PATH | --target-http PORT --target-zipkin PORT]
                               [--duration 10] [--connections 4]
                               [--spans-per-request 50] [--lines-per-request 200]
                               [--mode spans|accesslogs|both] [--workers thread|process]
                               [--json]

    # start a private sextant (default binary: <repo>/.build/release/sextant if it
    # exists, else <repo>/.build/debug/sextant) on free ports with a temp data dir:
    python3 scripts/loadgen.py --duration 10 --mode both

    # hit an instance that is already running:
    python3 scripts/loadgen.py --target-http 8080 --target-zipkin 9411 --mode spans

What it does:
  * Bodies are generated before the clock starts. A body is a template whose
    trace/span/request ids contain placeholder bytes; per "round" (one batch per
    sidecar of the same set of simulated calls) a worker substitutes a unique
    8-hex nonce and a random hex-digit permutation (one bytes.translate per
    request), so every request carries fresh, random-looking, never-repeated
    ids, while caller and callee records of one call stay linked. Timestamps
    are moved per round to the previous 10-second bucket (records are 2-20 s
    old when sent, never in the future).
  * Zipkin: `POST /api/v2/spans` with Envoy's headers (`transfer-encoding: chunked`,
    `host: zipkin:9411`, `x-envoy-internal`, ...); a batch holds spans of one
    sidecar only, --spans-per-request of them (the last batch of a sidecar in a
    round can be smaller).
  * Access logs: `POST /api/v1/accesslogs?node=<node id>` with
    --lines-per-request NDJSON lines of one sidecar; acked records are the
    `accepted` count of the answer, `rejected` is counted separately (also
    from a non-2xx answer carrying the counts, e.g. a 400 for a batch with
    bad lines; its `accepted` is reported apart, not as acked).
  * --connections workers, each with one keep-alive http.client connection to
    127.0.0.1, run for --duration seconds per channel (channels run one after
    the other with --mode both). Only 2xx answers count as acknowledged. 429/503
    are counted as overloaded; the worker sleeps for Retry-After (bounded by the
    time left) and sends the same body again. Other HTTP statuses and socket
    errors are counted as errors and the first distinct answers are printed.
  * Latency p50/p99 is per acknowledged request (send to last byte of answer).
  * Threads vs processes (--workers): threads are the default. Measured on the
    2-core target machine against a null stub server: 4-8 threads pushed
    200-280k spans/s (50 per request, ~4-6k requests/s) or ~415k access-log
    lines/s (200 per request) using at most one core (0.1-0.25 ms client CPU
    per request). That is over 3x what SQLite can commit on this machine
    (DESIGN.md: 58-80k span rows/s), and it leaves the other core to the
    server. Processes reached ~440k spans/s but took 1.2 cores, i.e. CPU the
    server needs. The report shows the client's and (when loadgen started it)
    sextant's CPU use and warns when the client nears one full core; then try
    larger batches or --workers process.

Output: a Markdown table (one row per channel), a line with the sextant
version, CPU count and parameters, and CPU use. --json prints one JSON object
instead. Exit status: 0 when every channel acknowledged at least one record,
1 otherwise, 2 for usage or startup errors.

Only the Python 3.11 standard library is used. All traffic goes to 127.0.0.1
and every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# ---------------------------------------------------------------------------
# The simulated mesh (same names, ports and identities as the fixtures).
# ---------------------------------------------------------------------------

NAMESPACE = "default"
MESH_ID = "cluster.local"
CLUSTER_ID = "Kubernetes"
SERVICE_PORT = 9080
ENVOY_LOCAL_IPV4 = "192.0.2.2"  # Envoy's local address in the captured spans
POD_IP = "127.0.0.1"
DRIVER_USER_AGENT = "mesh-harness-traffic/1.0"


class Workload:
    def __init__(self, index: int, service: str, version: str, pod: str):
        self.name = f"{service}-{version}"
        self.service = service
        self.version = version
        self.pod = pod
        base = 21000 + 100 * index
        self.outbound_port = base + 1
        self.inbound_port = base + 6
        self.app_port = base + 80
        self.node_id = f"sidecar~{POD_IP}~{pod}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"
        self.service_name = f"{service}.{NAMESPACE}"  # node.cluster, zipkin serviceName
        self.user_agent = f"bookinfo-{service}/{version}"


WORKLOADS = [
    Workload(1, "productpage", "v1", "productpage-v1-c2wpfmb65q-zcbrz"),
    Workload(2, "details", "v1", "details-v1-75vcsgqg4t-zsj5t"),
    Workload(3, "reviews", "v1", "reviews-v1-bgvdr4zmhm-54vqv"),
    Workload(4, "reviews", "v2", "reviews-v2-pjwm7fblnq-bnk2b"),
    Workload(5, "reviews", "v3", "reviews-v3-d2zgcfvfln-69bz9"),
    Workload(6, "ratings", "v1", "ratings-v1-x9jx2vb7t8-8qhjl"),
]
WL = {w.name: w for w in WORKLOADS}

# response body sizes seen in the fixtures, by (service, status)
RESPONSE_SIZE = {
    ("productpage", 200): 32, ("productpage", 404): 22, ("details", 200): 56,
    ("reviews-v1", 200): 23, ("reviews", 200): 40, ("ratings", 200): 54, ("ratings", 500): 49,
}

# ---------------------------------------------------------------------------
# Placeholders. Templates are text in which id digits, the nonce and the time
# prefix are stand-in bytes >= 0x80 (never present in real payloads). Every
# nonce/time position has its own byte, so one bytes.translate per request with
# a per-round table turns a template into the real body (same length).
# ---------------------------------------------------------------------------

HEX = b"0123456789abcdef"
ID_ALPHABET = bytes(range(0x80, 0x90))  # a random hex digit, permuted per round
ID_ALPHABET_STR = ID_ALPHABET.decode("latin-1")
NONCE_PH = bytes(range(0xA0, 0xA8))  # 8 hex digits unique per round: fresh ids
NONCE_PH_STR = NONCE_PH.decode("latin-1")
ZIPKIN_TS_PH = bytes(range(0x91, 0x9A))  # epoch microseconds // 10**7 (10 s buckets), 9 digits
ZIPKIN_TS_PH_STR = ZIPKIN_TS_PH.decode("latin-1")
ALOG_TS_PH = bytes(range(0xB0, 0xC2))  # "YYYY-MM-DDTHH:MM:S" (tens of seconds), 18 chars
ALOG_TS_PH_STR = ALOG_TS_PH.decode("latin-1")
TEMPLATE_WINDOW_US = 9_000_000  # all template times fit in one 10 s bucket


def round_table(digits: bytes, nonce: bytes, ts_ph: bytes, ts: bytes) -> bytes:
    """The translate table of one round: permuted id digits, nonce and time prefix."""
    table = bytearray(range(256))
    table[ID_ALPHABET[0]:ID_ALPHABET[0] + 16] = digits
    table[NONCE_PH[0]:NONCE_PH[0] + len(NONCE_PH)] = nonce
    table[ts_ph[0]:ts_ph[0] + len(ts_ph)] = ts
    return bytes(table)


def zipkin_ts_prefix() -> bytes:
    return b"%09d" % (time.time_ns() // 10**10 - 1)


def alog_ts_prefix() -> bytes:
    t = (int(time.time()) // 10 - 1) * 10
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")[:18].encode()


TS_PREFIX = {"zipkin": zipkin_ts_prefix, "accesslog": alog_ts_prefix}


class IdSource:
    """Template-unique random id parts written in the placeholder alphabet."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def rand(self, n: int) -> str:
        return "".join(self.rng.choice(ID_ALPHABET_STR) for _ in range(n))

    def unique(self, n: int) -> str:
        for _ in range(1000):
            s = self.rand(n)
            if s not in self.used:
                self.used.add(s)
                return s
        raise RuntimeError("id space exhausted")

    def span_id(self) -> str:  # 16 hex
        return self.unique(8) + NONCE_PH_STR

    def trace_high(self) -> str:  # high 64 bits; Envoy's low 64 bits = root span id
        return self.unique(16)

    def request_id(self) -> str:
        # Envoy's UUID x-request-id, version nibble '9' = traced/sampled
        return (f"{self.unique(8)}-{self.rand(4)}-9{self.rand(3)}-"
                f"{self.rng.choice('89ab')}{self.rand(3)}-{self.rand(4)}{NONCE_PH_STR}")


class RoundSimulator:
    """Simulates Bookinfo driver requests and records what each sidecar reports."""

    def __init__(self, rng: random.Random, want_spans: bool, want_logs: bool):
        self.rng = rng
        self.ids = IdSource(rng)
        self.want_spans = want_spans
        self.want_logs = want_logs
        self.spans: dict[str, list[tuple[int, str]]] = {w.name: [] for w in WORKLOADS}
        self.lines: dict[str, list[tuple[int, str]]] = {w.name: [] for w in WORKLOADS}
        self.ratings_calls = 0
        # connection 4-tuples are reused like Envoy's pools (one per hop pair)
        self.conn_ports: dict[tuple[str, str], int] = {}

    def eph(self, key: tuple[str, str]) -> int:
        if key not in self.conn_ports:
            self.conn_ports[key] = self.rng.randint(32768, 60999)
        return self.conn_ports[key]

    # -- records -----------------------------------------------------------

    def span(self, wl: Workload, kind: str, trace: str, span_id: str, parent: str | None,
             callee: str, url: str, ua: str, status: int, size: int, ts: int, dur: int,
             request_id: str, upstream_cluster: str) -> None:
        if not self.want_spans:
            return
        tags = {
            "upstream_cluster.name": upstream_cluster,
            "http.status_code": str(status),
            "http.url": url,
            "response_flags": "-",
            "request_size": "0",
            "node_id": wl.node_id,
            "istio.canonical_revision": wl.version,
            "upstream_cluster": upstream_cluster,
            "istio.cluster_id": CLUSTER_ID,
            "response_size": str(size),
            "istio.namespace": NAMESPACE,
            "istio.mesh_id": MESH_ID,
            "istio.canonical_service": wl.service,
            "guid:x-request-id": request_id,
            "http.protocol": "HTTP/1.1",
            "component": "proxy",
            "downstream_cluster": "-",
            "peer.address": POD_IP,
            "http.method": "GET",
            "user_agent": ua,
        }
        if status >= 500:
            tags["error"] = "true"
        tags_json = json.dumps(tags, ensure_ascii=False, separators=(",", ":"))
        parent_json = f'"parentId":"{parent}",' if parent else ""
        annotation = "ss" if kind == "SERVER" else "cr"
        ann_ts = ts + dur + self.rng.randint(60, 220)
        text = (
            f'{{"traceId":"{trace}","id":"{span_id}",{parent_json}"kind":"{kind}",'
            f'"name":"{callee}.{NAMESPACE}.svc.cluster.local:{SERVICE_PORT}/*",'
            f'"timestamp":{ZIPKIN_TS_PH_STR}{ts:07d},"duration":{dur},'
            f'"localEndpoint":{{"serviceName":"{wl.service_name}","ipv4":"{ENVOY_LOCAL_IPV4}","port":0}},'
            f'"annotations":[{{"timestamp":{ZIPKIN_TS_PH_STR}{ann_ts:07d},"value":"{annotation}"}}],'
            f'"tags":{tags_json}}}'
        )
        self.spans[wl.name].append((ts + dur, text))

    def line(self, wl: Workload, authority: str, path: str, request_id: str, trace: str,
             status: int, size: int, start_us: int, dur_us: int, upstream_cluster: str,
             downstream_local: str, downstream_remote: str, upstream_host: str,
             upstream_local: str, ua: str) -> None:
        if not self.want_logs:
            return
        dur_ms = dur_us // 1000
        secs, rest_us = divmod(start_us, 1_000_000)
        entry = {
            "authority": authority,
            "bytes_received": 0,
            "bytes_sent": size,
            "connection_termination_details": None,
            "downstream_local_address": downstream_local,
            "downstream_remote_address": downstream_remote,
            "duration": dur_ms,
            "method": "GET",
            "path": path,
            "protocol": "HTTP/1.1",
            "request_id": request_id,
            "requested_server_name": None,
            "response_code": status,
            "response_code_details": "via_upstream",
            "response_flags": "-",
            "route_name": "default",
            "start_time": f"{ALOG_TS_PH_STR}{secs}.{rest_us // 1000:03d}Z",
            "trace_id": trace,
            "upstream_cluster": upstream_cluster,
            "upstream_host": upstream_host,
            "upstream_local_address": upstream_local,
            "upstream_service_time": str(max(0, dur_ms - self.rng.randint(0, 2))),
            "upstream_transport_failure_reason": None,
            "user_agent": ua,
            "x_forwarded_for": None,
        }
        text = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        self.lines[wl.name].append((start_us + dur_us, text))

    # -- calls ---------------------------------------------------------------

    def hop(self, caller: Workload | None, callee: Workload, path: str, t: int, trace: str,
            caller_span: str | None, request_id: str, root_span: str | None = None) -> tuple[int, int, int]:
        """One HTTP call through caller's outbound and callee's inbound sidecar.

        Returns (end time at the caller, status, response size)."""
        rng = self.rng
        svc = callee.service
        server_span = root_span or self.ids.span_id()
        client_span = self.ids.span_id() if caller else None
        s_start = t + (rng.randint(150, 700) if caller else 0)
        cursor = s_start + rng.randint(700, 2500)
        status = 200
        if svc == "productpage":
            if path == "/does-not-exist":
                status = 404
            else:
                cursor = self.hop(callee, WL["details-v1"], "/details/0", cursor, trace,
                                  server_span, request_id)[0] + rng.randint(200, 900)
                reviews = WL[f"reviews-v{self.reviews_rr % 3 + 1}"]
                self.reviews_rr += 1
                cursor = self.hop(callee, reviews, "/reviews/0", cursor, trace,
                                  server_span, request_id)[0] + rng.randint(200, 900)
        elif svc == "reviews" and callee.version in ("v2", "v3"):
            cursor = self.hop(callee, WL["ratings-v1"], "/ratings/0", cursor, trace,
                              server_span, request_id)[0] + rng.randint(100, 600)
        elif svc == "ratings":
            self.ratings_calls += 1
            if self.ratings_calls % 10 == 0:
                status = 500
        s_end = cursor + rng.randint(300, 1500)
        c_end = s_end + (rng.randint(150, 700) if caller else 0)
        if svc == "reviews" and callee.version == "v1":
            size = RESPONSE_SIZE[("reviews-v1", 200)]
        else:
            size = RESPONSE_SIZE[(svc, status)]
        authority = f"{svc}:{SERVICE_PORT}"
        url = f"http://{authority}{path}"
        ua = caller.user_agent if caller else DRIVER_USER_AGENT
        inbound_cluster = f"inbound|{SERVICE_PORT}||"
        outbound_cluster = f"outbound|{SERVICE_PORT}||{svc}.{NAMESPACE}.svc.cluster.local"
        callee_inbound = f"{POD_IP}:{callee.inbound_port}"
        # the connection caller-sidecar -> callee-sidecar (or driver -> callee-sidecar)
        mesh_conn = f"{POD_IP}:{self.eph((caller.name if caller else 'driver', callee.name))}"
        # callee's sidecar -> its app
        app_conn = f"{POD_IP}:{self.eph((callee.name, 'app'))}"
        self.span(callee, "SERVER", trace, server_span, client_span, svc, url, ua, status, size,
                  s_start, s_end - s_start, request_id, inbound_cluster)
        self.line(callee, authority, path, request_id, trace, status, size, s_start, s_end - s_start,
                  inbound_cluster, callee_inbound, mesh_conn, f"{POD_IP}:{callee.app_port}", app_conn, ua)
        if caller is not None:
            self.span(caller, "CLIENT", trace, client_span, caller_span, svc, url, ua, status, size,
                      t, c_end - t, request_id, outbound_cluster)
            app_out = f"{POD_IP}:{self.eph((caller.name, 'app-out'))}"
            self.line(caller, authority, path, request_id, trace, status, size, t, c_end - t,
                      outbound_cluster, f"{POD_IP}:{caller.outbound_port}", app_out, callee_inbound,
                      mesh_conn, ua)
        return c_end, status, size

    def run(self, driver_requests: int) -> None:
        self.reviews_rr = self.rng.randrange(3)
        spacing = max(1, min(20_000, (TEMPLATE_WINDOW_US - 1_500_000) // max(1, driver_requests)))
        t = 200_000
        pp = WL["productpage-v1"]
        for i in range(driver_requests):
            root = self.ids.span_id()
            trace = self.ids.trace_high() + root
            path = "/does-not-exist" if i % 50 == 49 else "/productpage"
            self.hop(None, pp, path, t, trace, None, self.ids.request_id(), root_span=root)
            t += spacing


def build_rounds(channel: str, per_request: int, count: int, seed: int | None) -> list[list[tuple[str, bytes, int]]]:
    """Round templates: lists of (path, body template, record count)."""
    rounds = []
    for k in range(count):
        rng = random.Random(None if seed is None else seed * 1000 + k)
        sim = RoundSimulator(rng, want_spans=channel == "zipkin", want_logs=channel == "accesslog")
        # reviews-v1 sees 1/3 of the driver requests and reports one record each:
        # 3 * per_request driver requests fill every sidecar's batches exactly (but for the 404s).
        sim.run(3 * per_request)
        bodies: list[tuple[str, bytes, int]] = []
        records = sim.spans if channel == "zipkin" else sim.lines
        for w in WORKLOADS:
            items = [text for _, text in sorted(records[w.name], key=lambda x: x[0])]
            for i in range(0, len(items), per_request):
                chunk = items[i:i + per_request]
                if channel == "zipkin":
                    body = ("[" + ",".join(chunk) + "]").encode("latin-1")
                    body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
                    path = "/api/v2/spans"
                else:
                    body = ("\n".join(chunk) + "\n").encode("latin-1")
                    path = "/api/v1/accesslogs?node=" + urllib.parse.quote(w.node_id, safe="")
                bodies.append((path, body, len(chunk)))
        rng.shuffle(bodies)
        rounds.append(bodies)
    return rounds


def self_check(channel: str, rounds: list[list[tuple[str, bytes, int]]]) -> None:
    """Decode one materialized round and check the records are what we claim."""
    ts_ph = ZIPKIN_TS_PH if channel == "zipkin" else ALOG_TS_PH
    table = round_table(HEX, b"0badc0de", ts_ph, TS_PREFIX[channel]())
    seen = set()
    for path, body, n in rounds[0]:
        raw = body.translate(table)
        if max(raw) >= 0x80:
            raise AssertionError("placeholder left in body")
        if channel == "zipkin":
            size_line, rest = raw.split(b"\r\n", 1)
            payload = rest[:int(size_line, 16)]
            if rest[int(size_line, 16):] != b"\r\n0\r\n\r\n":
                raise AssertionError("bad chunk framing")
            spans = json.loads(payload)
            if len(spans) != n:
                raise AssertionError("span count")
            for s in spans:
                key = (s["traceId"], s["id"])
                if key in seen or len(s["traceId"]) != 32 or len(s["id"]) != 16:
                    raise AssertionError(f"bad or duplicate span id {key}")
                seen.add(key)
                if abs(s["timestamp"] / 1e6 - time.time()) > 60:
                    raise AssertionError("span timestamp off")
        else:
            lines = [json.loads(x) for x in raw.decode().splitlines()]
            if len(lines) != n:
                raise AssertionError("line count")
            for x in lines:
                if len(x) != 25 or len(x["request_id"]) != 36 or len(x["trace_id"]) != 32:
                    raise AssertionError("bad access-log line")
                start = datetime.strptime(x["start_time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
                if abs(start.timestamp() - time.time()) > 60:
                    raise AssertionError("access-log start_time off")


# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------

class PhaseSpec:
    def __init__(self, channel: str, port: int, rounds, duration: float, timeout: float):
        self.channel = channel
        self.port = port
        self.rounds = rounds
        self.duration = duration
        self.timeout = timeout
        self.salt = random.SystemRandom().getrandbits(32)
        if channel == "zipkin":
            self.headers = [
                ("host", "zipkin:9411"),
                ("content-type", "application/json"),
                ("transfer-encoding", "chunked"),
                ("x-envoy-expected-rq-timeout-ms", "5000"),
                ("x-envoy-internal", "true"),
                ("x-forwarded-for", ENVOY_LOCAL_IPV4),
            ]
        else:
            self.headers = [
                ("Host", f"{HOST}:{port}"),
                ("Content-Type", "application/x-ndjson"),
                ("User-Agent", "sextant-loadgen/1"),
            ]


def new_result() -> dict:
    return {
        "acked_records": 0, "acked_requests": 0, "rejected_records": 0, "overloaded": 0,
        "http_errors": {}, "io_errors": 0, "unparsed_acks": 0, "reconnects": 0, "accepted_in_errors": 0,
        "latencies": [], "samples": [], "t_end": 0.0, "cpu_s": 0.0, "sent_requests": 0,
    }


def note_sample(res: dict, text: str) -> None:
    if len(res["samples"]) < 5 and text not in res["samples"]:
        res["samples"].append(text)


def retry_after_seconds(value: str | None) -> float:
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 1.0


def run_worker(spec: PhaseSpec, windex: int, nworkers: int, wait_start) -> dict:
    res = new_result()
    rng = random.Random(os.urandom(16))
    conn = http.client.HTTPConnection(HOST, spec.port, timeout=spec.timeout)
    try:
        conn.connect()
    except OSError as e:
        res["io_errors"] += 1
        note_sample(res, f"connect: {e!r}")
        conn.close()
    is_zipkin = spec.channel == "zipkin"
    ts_ph = ZIPKIN_TS_PH if is_zipkin else ALOG_TS_PH
    ts_fn = TS_PREFIX[spec.channel]
    headers = spec.headers
    lat = res["latencies"]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = wait_start()
    deadline = t0 + spec.duration
    k = 0
    digits = bytearray(HEX)
    while time.monotonic() < deadline:
        r = windex + k * nworkers
        k += 1
        template = spec.rounds[r % len(spec.rounds)]
        rng.shuffle(digits)
        nonce = b"%08x" % (((r * 0x9E3779B1) ^ spec.salt) & 0xFFFFFFFF)
        table = round_table(bytes(digits), nonce, ts_ph, ts_fn())
        for path, tbody, nrec in template:
            if time.monotonic() >= deadline:
                break
            body = tbody.translate(table)
            if not is_zipkin:
                hdrs = headers + [("Content-Length", str(len(body)))]
            else:
                hdrs = headers
            io_retry = True
            while True:  # re-sends the same body on 429/503 and once on a socket error
                if conn.sock is None and res["sent_requests"]:
                    res["reconnects"] += 1
                started = time.perf_counter()
                try:
                    conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
                    for name, value in hdrs:
                        conn.putheader(name, value)
                    conn.endheaders(body)
                    res["sent_requests"] += 1
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    res["io_errors"] += 1
                    note_sample(res, f"{type(e).__name__}: {e}")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    time.sleep(min(0.05, left))
                    if io_retry:
                        io_retry = False
                        continue
                    break
                elapsed = time.perf_counter() - started
                status = resp.status
                if 200 <= status < 300:
                    res["acked_requests"] += 1
                    lat.append(elapsed)
                    if is_zipkin:
                        res["acked_records"] += nrec
                    else:
                        try:
                            answer = json.loads(data)
                            res["acked_records"] += int(answer["accepted"])
                            rejected = int(answer.get("rejected", 0))
                            res["rejected_records"] += rejected
                            if rejected:
                                note_sample(res, f"{status} {data[:300].decode('utf-8', 'replace')}")
                        except (ValueError, KeyError, TypeError):
                            res["acked_records"] += nrec
                            res["unparsed_acks"] += 1
                            note_sample(res, f"{status} (unparsed) {data[:300].decode('utf-8', 'replace')}")
                    break
                if status in (429, 503):
                    res["overloaded"] += 1
                    note_sample(res, f"{status} Retry-After={resp.getheader('Retry-After')!r} "
                                     f"{data[:200].decode('utf-8', 'replace')}")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    time.sleep(min(retry_after_seconds(resp.getheader("Retry-After")), left, 30.0))
                    if time.monotonic() >= deadline:
                        break
                    continue
                key = str(status)
                res["http_errors"][key] = res["http_errors"].get(key, 0) + 1
                note_sample(res, f"{status} {resp.reason} {data[:300].decode('utf-8', 'replace')}")
                if not is_zipkin:  # e.g. 400 {"accepted":n,"rejected":m,...}: not counted as acked
                    try:
                        answer = json.loads(data)
                        res["accepted_in_errors"] += int(answer["accepted"])
                        res["rejected_records"] += int(answer.get("rejected", 0))
                    except (ValueError, KeyError, TypeError):
                        pass
                break
    res["t_end"] = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    res["cpu_s"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    conn.close()
    return res


def _process_entry(spec, windex, nworkers, ready, start, t0_value, queue):
    def wait_start():
        ready.release()
        if not start.wait(60):
            return time.monotonic() - spec.duration  # never started: do nothing
        return t0_value.value
    try:
        res = run_worker(spec, windex, nworkers, wait_start)
    except BaseException as e:  # report instead of dying silently
        res = new_result()
        res["io_errors"] += 1
        note_sample(res, f"worker crashed: {e!r}")
        res["t_end"] = time.monotonic()
    queue.put(res)


def run_phase(spec: PhaseSpec, n: int, mode: str) -> tuple[list[dict], float, float]:
    """Runs n workers; returns (results, elapsed seconds, client CPU seconds)."""
    limit = spec.duration + spec.timeout + 30
    if mode == "thread":
        ready = threading.Semaphore(0)
        start = threading.Event()
        box: dict = {}
        results: list[dict] = []
        lock = threading.Lock()

        def wait_start():
            ready.release()
            if not start.wait(60):
                return time.monotonic() - spec.duration
            return box["t0"]

        def target(i):
            try:
                r = run_worker(spec, i, n, wait_start)
            except BaseException as e:
                r = new_result()
                r["io_errors"] += 1
                note_sample(r, f"worker crashed: {e!r}")
                r["t_end"] = time.monotonic()
            with lock:
                results.append(r)

        threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for _ in range(n):
            ready.acquire(timeout=30)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        box["t0"] = t0 = time.monotonic()
        start.set()
        for t in threads:
            t.join(timeout=max(0.1, t0 + limit - time.monotonic()))
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        with lock:
            done = list(results)
    else:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        ready = ctx.Semaphore(0)
        start = ctx.Event()
        t0_value = ctx.Value("d", 0.0)
        queue = ctx.Queue()
        procs = [ctx.Process(target=_process_entry, args=(spec, i, n, ready, start, t0_value, queue), daemon=True)
                 for i in range(n)]
        for p in procs:
            p.start()
        for _ in range(n):
            ready.acquire(timeout=60)
        t0 = time.monotonic()
        t0_value.value = t0
        start.set()
        done = []
        for _ in range(n):
            try:
                done.append(queue.get(timeout=max(0.1, t0 + limit - time.monotonic())))
            except Exception:
                break
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()  # our own child, by handle
                p.join(timeout=5)
        cpu = sum(r["cpu_s"] for r in done)
    if len(done) < n:
        lost = new_result()
        lost["io_errors"] = n - len(done)
        note_sample(lost, f"{n - len(done)} worker(s) did not finish in time")
        lost["t_end"] = time.monotonic()
        done.append(lost)
    t_end = max(r["t_end"] for r in done)
    return done, max(1e-9, t_end - t0), cpu


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    idx = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[idx]


def summarize(channel_label: str, results: list[dict], seconds: float, client_cpu: float,
              server_cpu: float | None) -> dict:
    total = new_result()
    lat: list[float] = []
    for r in results:
        for key in ("acked_records", "acked_requests", "rejected_records", "overloaded",
                    "io_errors", "unparsed_acks", "reconnects", "sent_requests", "accepted_in_errors"):
            total[key] += r[key]
        for status, c in r["http_errors"].items():
            total["http_errors"][status] = total["http_errors"].get(status, 0) + c
        lat.extend(r["latencies"])
        for s in r["samples"]:
            note_sample(total, s)
    lat.sort()
    p50 = percentile(lat, 0.50)
    p99 = percentile(lat, 0.99)
    return {
        "channel": channel_label,
        "records_acked": total["acked_records"],
        "seconds": round(seconds, 3),
        "records_per_s": round(total["acked_records"] / seconds, 1),
        "requests_per_s": round(total["acked_requests"] / seconds, 1),
        "p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "p99_ms": None if p99 is None else round(p99 * 1000, 2),
        "requests_acked": total["acked_requests"],
        "requests_sent": total["sent_requests"],
        "overloaded_responses": total["overloaded"],
        "rejected_records": total["rejected_records"],
        "http_errors": total["http_errors"],
        "io_errors": total["io_errors"],
        "unparsed_acks": total["unparsed_acks"],
        "accepted_in_error_answers": total["accepted_in_errors"],
        "reconnects": total["reconnects"],
        "error_samples": total["samples"],
        "client_cpu_s": round(client_cpu, 2),
        "client_cores": round(client_cpu / seconds, 2),
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 2),
        "server_cores": None if server_cpu is None else round(server_cpu / seconds, 2),
    }


def errors_cell(row: dict) -> str:
    parts = []
    if row["overloaded_responses"]:
        parts.append(f"429/503: {row['overloaded_responses']}")
    if row["rejected_records"]:
        parts.append(f"rejected records: {row['rejected_records']}")
    for status, c in sorted(row["http_errors"].items()):
        parts.append(f"HTTP {status}: {c}")
    if row["io_errors"]:
        parts.append(f"socket: {row['io_errors']}")
    return ", ".join(parts) if parts else "0"


# ---------------------------------------------------------------------------
# Sextant process handling
# ---------------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def display_path(p: Path) -> str:
    """p relative to the working directory or the repo when below them (symlinks kept)."""
    absolute = Path(os.path.abspath(p))
    for base in (Path.cwd(), REPO_ROOT):
        try:
            return str(absolute.relative_to(Path(os.path.abspath(base))))
        except ValueError:
            continue
    return str(p)


def sextant_version(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown (`sextant --version` failed: {e})"
    text = (out.stdout.strip() or out.stderr.strip()).splitlines()
    first = text[0] if text else ""
    if out.returncode != 0:
        return f"unknown (`sextant --version` exit {out.returncode}: {first[:200]})"
    return first[:200] or "unknown (empty `--version` output)"


def proc_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def other_port_flags(binary: Path, user_args: list[str]) -> list[str]:
    """`serve` port options besides --http-port/--zipkin-port that the user did not set.

    Each gets a free port so that a private instance never collides with another
    sextant on the same machine (e.g. on the default 4317/4318/9125)."""
    try:
        out = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    flags = sorted(set(re.findall(r"(--[a-z0-9-]+-port) <port>", out.stdout + out.stderr)))
    return [f for f in flags if f not in ("--http-port", "--zipkin-port")
            and not any(a == f or a.startswith(f + "=") for a in user_args)]


class Sextant:
    def __init__(self, binary: Path, extra_args: list[str], startup_timeout: float, keep: bool,
                 auto_ports: bool = True):
        self.binary = binary
        self.extra_args = extra_args
        self.auto_ports = auto_ports
        self.moved_ports: list[str] = []
        self.startup_timeout = startup_timeout
        self.keep = keep
        self.proc: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self.http_port = self.zipkin_port = 0
        self.log_file = None

    def log_tail(self, n: int = 40) -> str:
        if not self.tmp:
            return ""
        try:
            lines = (self.tmp / "sextant.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def log_highlights(self, n: int = 12) -> str:
        """Error-ish lines of the log (a Swift crash's tail is only a list of images)."""
        if not self.tmp:
            return ""
        try:
            lines = (self.tmp / "sextant.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        pattern = re.compile(r"Fatal error|crashed|\b(error|critical|warning)\b|Sextant\w*/\S+\.swift:\d+", re.I)
        hits = [line[:400] for line in lines if pattern.search(line)]
        return "\n".join(hits[:n]) if hits else "\n".join(line[:400] for line in lines[-n:])

    def start(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="sextant-loadgen-"))
        data_dir = self.tmp / "data"
        data_dir.mkdir()
        others = other_port_flags(self.binary, self.extra_args) if self.auto_ports else []
        ports = free_ports(2 + len(others))
        self.http_port, self.zipkin_port = ports[0], ports[1]
        for flag, port in zip(others, ports[2:]):
            self.moved_ports += [flag, str(port)]
        cmd = [str(self.binary), "serve", "--data-dir", str(data_dir), "--listen", HOST,
               "--http-port", str(self.http_port), "--zipkin-port", str(self.zipkin_port)]
        cmd += self.moved_ports + self.extra_args
        self.log_file = open(self.tmp / "sextant.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sextant exited with code {self.proc.returncode} before /readyz answered 200")
            try:
                status, _, body = http_get(self.http_port, "/readyz", timeout=1.0)
                if status == 200:
                    return
                last = f"{status} {body[:200]!r}"
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError(f"sextant not ready after {self.startup_timeout:.0f} s (last /readyz: {last})")

    def stop(self) -> int | None:
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()  # our own child, by pid
                    self.proc.wait(timeout=10)
            code = self.proc.returncode
        if self.log_file:
            self.log_file.close()
        if self.tmp and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return code


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def default_binary() -> Path:
    release = REPO_ROOT / ".build" / "release" / "sextant"
    return release if release.exists() else REPO_ROOT / ".build" / "debug" / "sextant"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="loadgen.py",
        description="Envoy-like load for Sextant's Zipkin and access-log HTTP ingest (127.0.0.1 only).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Usage:", 1)[1] if __doc__ and "Usage:" in __doc__ else None,
    )
    p.add_argument("--sextant-bin", type=Path,
                   help="sextant binary to start privately (default: <repo>/.build/release/sextant "
                        "if present, else <repo>/.build/debug/sextant)")
    p.add_argument("--sextant-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `sextant serve` (repeatable, e.g. --sextant-arg=--flag=value)")
    p.add_argument("--no-auto-ports", action="store_true",
                   help="do not move the other `serve --help` port options (--grpc-port, ...) to free ports")
    p.add_argument("--target-http", type=int, metavar="PORT", help="HTTP port of a running sextant")
    p.add_argument("--target-zipkin", type=int, metavar="PORT", help="Zipkin port of a running sextant")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per channel (default 10)")
    p.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections (default 4)")
    p.add_argument("--spans-per-request", type=int, default=50, help="spans per Zipkin POST (default 50)")
    p.add_argument("--lines-per-request", type=int, default=200, help="lines per access-log POST (default 200)")
    p.add_argument("--mode", choices=["spans", "accesslogs", "both"], default="both")
    p.add_argument("--workers", choices=["thread", "process"], default="thread",
                   help="one thread (default) or one process per connection")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout, s (default 30)")
    p.add_argument("--startup-timeout", type=float, default=60.0, help="wait for /readyz, s (default 60)")
    p.add_argument("--templates", type=int, default=4, help="distinct round templates per channel (default 4)")
    p.add_argument("--seed", type=int, help="seed for the templates (ids stay fresh per request anyway)")
    p.add_argument("--keep-data", action="store_true", help="keep the private sextant's temp dir")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of Markdown")
    a = p.parse_args(argv)
    if not 0 < a.duration <= 3600:
        p.error("--duration must be in (0, 3600]")
    if not 1 <= a.connections <= 256:
        p.error("--connections must be in [1, 256]")
    if not 1 <= a.spans_per_request <= 10000 or not 1 <= a.lines_per_request <= 100000:
        p.error("--spans-per-request must be in [1, 10000], --lines-per-request in [1, 100000]")
    if not 1 <= a.templates <= 64:
        p.error("--templates must be in [1, 64]")
    external = a.target_http is not None or a.target_zipkin is not None
    if external and a.sextant_bin is not None:
        p.error("use either --sextant-bin or --target-http/--target-zipkin")
    if external:
        if a.mode in ("spans", "both") and a.target_zipkin is None:
            p.error("--target-zipkin is needed for --mode spans/both")
        if a.mode in ("accesslogs", "both") and a.target_http is None:
            p.error("--target-http is needed for --mode accesslogs/both")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    channels = []
    if args.mode in ("spans", "both"):
        channels.append(("zipkin", "zipkin spans", args.spans_per_request))
    if args.mode in ("accesslogs", "both"):
        channels.append(("accesslog", "access-log lines", args.lines_per_request))

    # pre-generate everything before any clock starts
    t_gen = time.monotonic()
    templates = {}
    for ch, _, per in channels:
        templates[ch] = build_rounds(ch, per, args.templates, args.seed)
        self_check(ch, templates[ch])
    gen_seconds = time.monotonic() - t_gen

    sextant = None
    info: dict = {}
    server_pid = None
    if args.target_http is None and args.target_zipkin is None:
        binary = args.sextant_bin or default_binary()
        if not binary.exists():
            print(f"loadgen: sextant binary not found: {display_path(binary)} "
                  f"(build it, or pass --sextant-bin / --target-http --target-zipkin)", file=sys.stderr)
            return 2
        info["version"] = sextant_version(binary)
        info["binary"] = display_path(binary)
        parts = Path(os.path.abspath(binary)).parts
        info["build"] = "release" if "release" in parts else "debug" if "debug" in parts else "unknown"
        sextant = Sextant(binary, args.sextant_arg, args.startup_timeout, args.keep_data,
                          auto_ports=not args.no_auto_ports)
        try:
            sextant.start()
        except (RuntimeError, OSError) as e:
            print(f"loadgen: could not start sextant: {e}", file=sys.stderr)
            tail = sextant.log_tail()
            if tail:
                print("---- sextant log (tail) ----\n" + tail, file=sys.stderr)
            sextant.stop()
            return 2
        http_port, zipkin_port = sextant.http_port, sextant.zipkin_port
        server_pid = sextant.proc.pid
        info["started_by_loadgen"] = True
        info["other_ports"] = " ".join(sextant.moved_ports)
    else:
        http_port, zipkin_port = args.target_http, args.target_zipkin
        info["version"] = "unknown (external instance)"
        info["started_by_loadgen"] = False
        if http_port is not None:
            try:
                status, headers, _ = http_get(http_port, "/readyz")
                info["readyz"] = status
                server = {k.lower(): v for k, v in headers.items()}.get("server")
                if server:
                    info["version"] = f"unknown (external instance, Server: {server})"
            except (OSError, http.client.HTTPException) as e:
                info["readyz"] = repr(e)
    info["http_port"], info["zipkin_port"] = http_port, zipkin_port

    rows = []
    exit_code = 0
    try:
        for ch, label, _ in channels:
            port = zipkin_port if ch == "zipkin" else http_port
            spec = PhaseSpec(ch, port, templates[ch], args.duration, args.timeout)
            srv0 = proc_cpu_seconds(server_pid) if server_pid else None
            results, seconds, client_cpu = run_phase(spec, args.connections, args.workers)
            srv1 = proc_cpu_seconds(server_pid) if server_pid else None
            server_cpu = srv1 - srv0 if srv0 is not None and srv1 is not None else None
            rows.append(summarize(label, results, seconds, client_cpu, server_cpu))
            if sextant and sextant.proc.poll() is not None:
                info["sextant_exit"] = f"sextant exited with code {sextant.proc.returncode} during the {label} run"
                break
    except KeyboardInterrupt:
        info["interrupted"] = True
        exit_code = 130
    finally:
        if sextant:
            if server_pid:
                info["server_peak_rss_mb"] = proc_peak_rss_mb(server_pid)
            alive = sextant.proc.poll() is None
            code = sextant.stop()
            info["sextant_stop"] = (f"stopped with SIGTERM, exit code {code}" if alive
                                    else f"had already exited with code {code}")
            troubled = any(r["http_errors"] or r["io_errors"] for r in rows)
            if not alive or troubled or code not in (0, None, -signal.SIGTERM):
                info["sextant_log_tail"] = sextant.log_highlights()

    params = {
        "mode": args.mode, "duration_s": args.duration, "connections": args.connections,
        "workers": args.workers, "spans_per_request": args.spans_per_request,
        "lines_per_request": args.lines_per_request, "templates": args.templates,
        "body_generation_s": round(gen_seconds, 2),
    }
    cpu_count = os.cpu_count()
    if exit_code == 0 and (not rows or any(r["records_acked"] == 0 for r in rows) or len(rows) < len(channels)):
        exit_code = 1

    if args.json:
        print(json.dumps({"sextant": info, "cpu_count": cpu_count, "python": sys.version.split()[0],
                          "params": params, "results": rows}, indent=2))
        return exit_code

    print("| channel | records acked | seconds | records/s | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.1f}"
        p99 = "-" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}"
        print(f"| {r['channel']} | {r['records_acked']} | {r['seconds']:.2f} | {r['records_per_s']:.0f} | "
              f"{r['requests_per_s']:.1f} | {p50} | {p99} | {errors_cell(r)} |")
    print()
    where = (f"{info.get('build')} build, started by loadgen from {info.get('binary')} on {HOST} "
             f"http {http_port} / zipkin {zipkin_port}"
             + (f", other listeners moved to {info['other_ports']}" if info.get("other_ports") else "")
             if info["started_by_loadgen"] else f"running instance on {HOST} http {http_port} / zipkin {zipkin_port}")
    print(f"sextant: {info['version']} ({where}); CPUs: {cpu_count}; mode {args.mode}, "
          f"{args.duration:g} s per channel, {args.connections} connections ({args.workers} workers), "
          f"{args.spans_per_request} spans/request, {args.lines_per_request} lines/request; "
          f"Python {sys.version.split()[0]}")
    for r in rows:
        cpu = f"client CPU {r['client_cpu_s']:.1f} s ({r['client_cores']:.2f} cores)"
        if r["server_cpu_s"] is not None:
            cpu += f", sextant CPU {r['server_cpu_s']:.1f} s ({r['server_cores']:.2f} cores)"
        extra = ""
        if r["reconnects"]:
            extra += f", {r['reconnects']} reconnects"
        if r["accepted_in_error_answers"]:
            extra += (f", {r['accepted_in_error_answers']} records reported accepted inside non-2xx answers "
                      f"(not counted as acked)")
        if r["unparsed_acks"]:
            extra += f", {r['unparsed_acks']} 2xx answers without a readable accepted count"
        print(f"{r['channel']}: {r['requests_acked']}/{r['requests_sent']} requests acked; {cpu}{extra}")
        if args.workers == "thread" and r["client_cores"] >= 0.9:
            print(f"  note: the client used ~{r['client_cores']:.2f} cores; it may be the bottleneck "
                  f"(try --workers process or larger batches)")
        for s in r["error_samples"]:
            print(f"  answer/error sample: {s}")
    if info.get("readyz", 200) != 200:
        print(f"sextant: GET /readyz answered {info['readyz']}")
    for key in ("sextant_exit", "sextant_stop"):
        if key in info:
            print(f"sextant: {info[key]}")
    if info.get("server_peak_rss_mb"):
        print(f"sextant peak RSS: {info['server_peak_rss_mb']:.0f} MB")
    if info.get("sextant_log_tail"):
        print("sextant log (error lines, or its tail):\n" + info["sextant_log_tail"])
    if info.get("interrupted"):
        print("interrupted")
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
