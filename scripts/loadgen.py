#!/usr/bin/env python3
"""Load generator for Sextant's ingest: Zipkin v2 spans and Istio JSON access-log lines over HTTP,
OTLP spans and Envoy access log service (ALS) entries over gRPC.

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
    .venv/bin/python scripts/loadgen.py
        [--sextant-bin PATH | --target-http PORT --target-zipkin PORT --target-grpc PORT]
        [--mode all|both|spans|accesslogs|otlp|als (comma-separated list allowed)]
        [--duration 10] [--connections 4] [--spans-per-request 50] [--lines-per-request 200]
        [--als-stream-messages 20] [--workers thread|process] [--no-verify] [--json]

    # start a private sextant (default binary: <repo>/.build/release/sextant if it
    # exists, else <repo>/.build/debug/sextant) on free ports with a temp data dir;
    # all four channels, one after the other:
    .venv/bin/python scripts/loadgen.py --sextant-bin .build/debug/sextant --mode all

    # only the gRPC channels, against an instance that is already running:
    .venv/bin/python scripts/loadgen.py --target-http 9876 --target-grpc 4317 --mode otlp,als

    # HTTP channels only (`both`, as before); plain python3 is enough for these:
    python3 scripts/loadgen.py --target-http 8080 --target-zipkin 9411 --mode both

Modes: spans (Zipkin), accesslogs (HTTP upload), otlp (OTLP/gRPC traces), als (gRPC
ALS); both = spans,accesslogs; all = the four (default). The gRPC channels need the
grpcio package (in the venv that scripts/setup-test-env.sh builds); without it they
are reported as skipped (exit status 2 when nothing else was asked for).

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
  * OTLP gRPC: unary `/opentelemetry.proto.collector.trace.v1.TraceService/Export`
    to --grpc-port; a request holds --spans-per-request spans of one sidecar as
    Envoy's OpenTelemetry tracer sends them (resource service.name = node.cluster,
    service.instance.id = node id, k8s.*, telemetry.sdk.*; scope `envoy`; the
    span attributes of the Zipkin tags plus `zone`; flags 257 on the root, 769
    otherwise; status ERROR on 5xx). Acked = gRPC OK, minus
    `partial_success.rejected_spans` (counted as rejected).
  * ALS: client-streaming `/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`.
    Per round and sidecar a worker opens one stream: the first message carries
    `identifier` (node id, cluster, Istio metadata NAMESPACE/WORKLOAD_NAME/LABELS/...,
    build version and the fixture's 516 extensions), every message
    --lines-per-request HTTPAccessLogEntry (outbound and inbound entries of one call
    share x-request-id and b3 headers; addresses as in the JSON lines). A round
    gives productpage's sidecar about --als-stream-messages messages, the others
    fewer; no stream has more. Sextant commits each message before it reads the
    next, so the entries of a stream count as acked once its response arrives OK
    (requests = messages; p50/p99 = per stream). A failed stream is not re-sent.
    At the deadline a worker stops between streams, so its last round can leave
    some calls with one side only (e.g. an `unknown -> reviews-v2` graph edge).
  * Protobuf bodies are encoded here (a small varint/length-delimited encoder; no
    generated code). As a translate of a binary body would hit lengths and fixed64
    times, a protobuf template keeps its variable runs (binary ids, id text, the
    time's high bytes) in a separate placeholder blob: per request
    `fmt % unpack(a2b_hex(blob.translate(table)))`, ~20 us for 50 spans. When a
    round starts, OTLP times lie 4-13 s in the past (base = a multiple of 2**32 ns,
    template times within 4 s), ALS start times 8-32 s (base = a multiple of 16 s). The self-check decodes a round (with
    opentelemetry-proto too when installed) before the clock starts.
  * gRPC: one channel (HTTP/2 connection) per worker, bytes in and out (no
    serializers). RESOURCE_EXHAUSTED/UNAVAILABLE answers count as overloaded: OTLP
    backs off (0.1 s doubling to 2 s, within the time left) and re-sends; an
    UNAVAILABLE from the client library itself (connection refused/reset) is a
    socket error. Other codes count as errors by name.
  * --connections workers, each with one keep-alive http.client connection (or
    gRPC channel) to 127.0.0.1, run for --duration seconds per channel (channels
    run one after the other). Only 2xx answers count as acknowledged. 429/503
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
version, CPU count and parameters, and CPU use. Then, unless --no-verify, what
sextant reports having received: `sextant_received_records_total` from
/metrics (with a private instance also per acked record: span channels count
2, the span and the call derived from it) and the edges of
`/api/v1/graph?window=15m` per source (spans, accesslog, als); a WARNING when a
channel's records are missing there. --json prints one JSON object instead.
Exit status: 0 when every channel that ran acknowledged at least one record, 1
otherwise, 2 for usage or startup errors.

The HTTP channels use only the Python 3.11 standard library; the gRPC channels
need grpcio. All traffic goes to 127.0.0.1 and every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import binascii
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
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

try:  # only the gRPC channels (otlp, als) need it: run from the venv (scripts/setup-test-env.sh)
    import grpc
    GRPC_IMPORT_ERROR = None
except ImportError as _e:
    grpc = None
    GRPC_IMPORT_ERROR = str(_e)

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

    def __init__(self, rng: random.Random, channel: str):
        self.rng = rng
        self.ids = IdSource(rng)
        self.channel = channel  # zipkin, accesslog, otlp or als: the record format to produce
        self.want_spans = channel in ("zipkin", "otlp")
        self.want_logs = channel in ("accesslog", "als")
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
        if self.channel == "otlp":
            self.spans[wl.name].append((ts + dur, otlp_span(
                wl, kind, trace, span_id, parent, callee, url, ua, status, size, ts, dur, request_id,
                upstream_cluster)))
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
             upstream_local: str, ua: str, span_id: str, parent_id: str | None) -> None:
        if not self.want_logs:
            return
        if self.channel == "als":
            self.lines[wl.name].append((start_us + dur_us, als_entry(
                self.rng, authority, path, request_id, trace, span_id, parent_id, status, size, start_us,
                dur_us, upstream_cluster, downstream_local, downstream_remote, upstream_host, upstream_local, ua)))
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
                  inbound_cluster, callee_inbound, mesh_conn, f"{POD_IP}:{callee.app_port}", app_conn, ua,
                  span_id=server_span, parent_id=client_span)
        if caller is not None:
            self.span(caller, "CLIENT", trace, client_span, caller_span, svc, url, ua, status, size,
                      t, c_end - t, request_id, outbound_cluster)
            app_out = f"{POD_IP}:{self.eph((caller.name, 'app-out'))}"
            self.line(caller, authority, path, request_id, trace, status, size, t, c_end - t,
                      outbound_cluster, f"{POD_IP}:{caller.outbound_port}", app_out, callee_inbound,
                      mesh_conn, ua, span_id=client_span, parent_id=caller_span)
        return c_end, status, size

    def run(self, driver_requests: int, window_us: int = TEMPLATE_WINDOW_US) -> None:
        self.reviews_rr = self.rng.randrange(3)
        spacing = max(1, min(20_000, (window_us - 1_500_000) // max(1, driver_requests)))
        t = 200_000
        pp = WL["productpage-v1"]
        for i in range(driver_requests):
            root = self.ids.span_id()
            trace = self.ids.trace_high() + root
            path = "/does-not-exist" if i % 50 == 49 else "/productpage"
            self.hop(None, pp, path, t, trace, None, self.ids.request_id(), root_span=root)
            t += spacing


# ---------------------------------------------------------------------------
# Protobuf bodies (OTLP traces, Envoy ALS), encoded by hand.
#
# A binary body cannot be refreshed with one translate of the whole body (any
# byte value occurs in lengths and fixed64 times), so a protobuf template keeps
# its variable runs (ids, x-request-id text, the time's high bytes) apart:
#   body = fmt % unpack(a2b_hex(blob.translate(table)))
# `blob` is the placeholder form of all variable runs in body order, two blob
# bytes per output byte; one per-round table turns it into hex digits, then
# four C-level calls give the real body. The placeholder alphabets below are
# blob bytes only (they never meet literal protobuf bytes).
# ---------------------------------------------------------------------------

B_ID = ID_ALPHABET[0]  # 16: a permuted hex digit (binary ids: one nibble each)
B_NONCE = NONCE_PH[0]  # 8: the round nonce's hex digits (binary ids)
B_TXT_HI, B_TXT_LO = 0xC0, 0xD0  # 16 + 16: a permuted digit written as text (hex of its ASCII)
B_TXT_NHI, B_TXT_NLO = 0xE0, 0xE8  # 8 + 8: a nonce digit written as text
B_TIME = 0xF0  # up to 16: the round's time bytes, in hex
OTLP_WINDOW_US = 4_000_000  # OTLP template times stay below 2**32 ns (4.29 s), see otlp_time_hex
ENVOY_BUILD = "9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL"
OTLP_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
ALS_METHOD = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
ALS_FIXTURE_FIRST_MESSAGE = REPO_ROOT / "Tests" / "Fixtures" / "envoy" / "als" / "productpage-v1" / "msg-001.pb"


def pb_varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative int64: ten bytes, as protobuf writes them
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pb_key(num: int, wire_type: int) -> bytes:
    return pb_varint(num << 3 | wire_type)


class Var:
    """n variable output bytes; blob = their placeholder form (2 * n blob bytes)."""
    __slots__ = ("blob", "n")

    def __init__(self, blob: bytes, n: int):
        if len(blob) != 2 * n:
            raise ValueError("a Var's blob must hold two bytes per output byte")
        self.blob = blob
        self.n = n


def pb_size(parts: list) -> int:
    return sum(p.n if isinstance(p, Var) else len(p) for p in parts)


def f_uint(num: int, v: int) -> list:
    return [pb_key(num, 0) + pb_varint(v)] if v else []  # proto3: zero is not written


def f_str(num: int, s: str | bytes) -> list:
    b = s.encode() if isinstance(s, str) else s
    return [pb_key(num, 2) + pb_varint(len(b)) + b] if b else []


def f_msg(num: int, parts: list) -> list:
    return [pb_key(num, 2) + pb_varint(pb_size(parts)), *parts]


def f_var(num: int, v: Var) -> list:
    return [pb_key(num, 2) + pb_varint(v.n), v]


def var_bin(ph: str) -> Var:
    """A binary id from its text placeholder form (IdSource: 2 hex digits per byte)."""
    return Var(ph.encode("latin-1"), len(ph) // 2)


def var_text(ph: str) -> Var:
    """An id as text (x-request-id, b3 headers): each character becomes the hex of its ASCII."""
    blob = bytearray()
    for c in ph:
        o = ord(c)
        if B_ID <= o < B_ID + 16:
            blob += bytes((B_TXT_HI + o - B_ID, B_TXT_LO + o - B_ID))
        elif B_NONCE <= o < B_NONCE + 8:
            blob += bytes((B_TXT_NHI + o - B_NONCE, B_TXT_NLO + o - B_NONCE))
        elif o < 0x80:
            blob += b"%02x" % o
        else:
            raise ValueError(f"unexpected placeholder {o:#x}")
    return Var(bytes(blob), len(ph))


def var_time_otlp(offset_ns: int) -> Var:
    """fixed64 nanoseconds = (round's high 32 bits) << 32 | offset (template-constant low word)."""
    if not 0 <= offset_ns < 1 << 32:
        raise ValueError("OTLP template time beyond 2**32 ns")
    return Var(struct.pack("<I", offset_ns).hex().encode() + bytes(range(B_TIME, B_TIME + 8)), 8)


def otlp_time_hex() -> bytes:
    """High word of the round's base time: 4.3-12.9 s before now, so every record is in the past."""
    return struct.pack("<I", (time.time_ns() >> 32) - 2).hex().encode()


def var_time_als(offset_s: int) -> Var:
    """Timestamp.seconds varint (5 bytes) of base + offset, base a multiple of 16, offset < 16."""
    if not 0 <= offset_s < 16:
        raise ValueError("ALS template time beyond 16 s")
    return Var(bytes((B_TIME,)) + b"%x" % offset_s + bytes(range(B_TIME + 1, B_TIME + 9)), 5)


def als_time_hex() -> bytes:
    """The round's base second (16-32 s before now, multiple of 16) as var_time_als expects it."""
    t = (int(time.time()) // 16 - 1) * 16
    if not 1 << 28 <= t < 1 << 35:
        raise ValueError("clock outside the 5-byte varint range")
    first_high_nibble = b"%x" % (8 + ((t >> 4) & 7))
    rest = bytes((0x80 | (t >> 7) & 0x7F, 0x80 | (t >> 14) & 0x7F, 0x80 | (t >> 21) & 0x7F, t >> 28))
    return first_high_nibble + rest.hex().encode()


BLOB_TIME = {"otlp": otlp_time_hex, "als": als_time_hex}


def blob_table(digits: bytes, nonce: bytes, time_hex: bytes) -> bytes:
    """The translate table of one round for protobuf templates (compare round_table)."""
    table = bytearray(range(256))
    table[B_ID:B_ID + 16] = digits
    table[B_NONCE:B_NONCE + 8] = nonce
    dh, nh = digits.hex().encode(), nonce.hex().encode()
    table[B_TXT_HI:B_TXT_HI + 16] = dh[0::2]
    table[B_TXT_LO:B_TXT_LO + 16] = dh[1::2]
    table[B_TXT_NHI:B_TXT_NHI + 8] = nh[0::2]
    table[B_TXT_NLO:B_TXT_NLO + 8] = nh[1::2]
    table[B_TIME:B_TIME + len(time_hex)] = time_hex
    return bytes(table)


class Template:
    """A protobuf body with variable runs; render(table) gives the bytes of one request."""
    __slots__ = ("fmt", "blob", "layout", "unpack", "size")

    def __init__(self, parts: list | None = None, *, state: tuple | None = None):
        if state is None:
            fmt, blob, layout = [], [], []
            for p in parts:
                if isinstance(p, Var):
                    fmt.append(b"%s")
                    blob.append(p.blob)
                    layout.append(f"{p.n}s")
                else:
                    fmt.append(p.replace(b"%", b"%%"))
            state = (b"".join(fmt), b"".join(blob), "<" + "".join(layout), pb_size(parts))
        self.fmt, self.blob, self.layout, self.size = state
        self.unpack = struct.Struct(self.layout).unpack

    def __reduce__(self):  # picklable for --workers process
        return (_template_from_state, ((self.fmt, self.blob, self.layout, self.size),))

    def render(self, table: bytes) -> bytes:
        return self.fmt % self.unpack(binascii.a2b_hex(self.blob.translate(table)))


def _template_from_state(state: tuple) -> Template:
    return Template(state=state)


def kv_str(key: str, value: str | Var) -> list:
    """opentelemetry.proto.common.v1.KeyValue with a string AnyValue."""
    if isinstance(value, Var):
        inner = f_var(1, value)
    else:
        b = value.encode()
        inner = [pb_key(1, 2) + pb_varint(len(b)) + b]  # string_value, written even when empty ("zone")
    return f_str(1, key) + f_msg(2, inner)


def otlp_span(wl: Workload, kind: str, trace: str, span_id: str, parent: str | None, callee: str, url: str,
              ua: str, status: int, size: int, ts: int, dur: int, request_id: str, upstream_cluster: str) -> list:
    """The fields of one opentelemetry.proto.trace.v1.Span as Envoy's OpenTelemetry tracer writes it."""
    attrs = [
        ("node_id", wl.node_id), ("zone", ""), ("guid:x-request-id", var_text(request_id)), ("http.url", url),
        ("http.method", "GET"), ("downstream_cluster", "-"), ("user_agent", ua), ("http.protocol", "HTTP/1.1"),
        ("peer.address", POD_IP), ("request_size", "0"), ("response_size", str(size)), ("component", "proxy"),
        ("upstream_cluster", upstream_cluster), ("upstream_cluster.name", upstream_cluster),
        ("http.status_code", str(status)), ("response_flags", "-"),
    ]
    if status >= 500:
        attrs.append(("error", "true"))
    attrs += [("istio.mesh_id", MESH_ID), ("istio.canonical_revision", wl.version),
              ("istio.canonical_service", wl.service), ("istio.namespace", NAMESPACE),
              ("istio.cluster_id", CLUSTER_ID)]
    parts = f_var(1, var_bin(trace)) + f_var(2, var_bin(span_id))
    if parent:
        parts += f_var(4, var_bin(parent))
    parts += f_str(5, f"{callee}.{NAMESPACE}.svc.cluster.local:{SERVICE_PORT}/*")
    parts += f_uint(6, 2 if kind == "SERVER" else 3)
    parts += [pb_key(7, 1), var_time_otlp(ts * 1000), pb_key(8, 1), var_time_otlp((ts + dur) * 1000)]
    for key, value in attrs:
        parts += f_msg(9, kv_str(key, value))
    if status >= 500:
        parts += f_msg(15, f_uint(3, 2))  # status.code = STATUS_CODE_ERROR, no message
    flags = 257 if parent is None else 769  # sampled + has-is-remote (+ parent is remote)
    parts += [pb_key(16, 5) + struct.pack("<I", flags)]
    return parts


def otlp_resource_scope(wl: Workload) -> tuple[list, list]:
    """ResourceSpans.resource and ScopeSpans.scope of a sidecar's Export request (as in the fixtures)."""
    attrs = [
        ("k8s.namespace.name", NAMESPACE), ("service.name", wl.service_name), ("service.version", wl.version),
        ("k8s.pod.name", wl.pod), ("service.namespace", NAMESPACE), ("k8s.deployment.name", wl.name),
        ("telemetry.sdk.name", "envoy"), ("telemetry.sdk.version", ENVOY_BUILD),
        ("service.instance.id", wl.node_id), ("telemetry.sdk.language", "cpp"),
    ]
    resource: list = []
    for key, value in attrs:
        resource += f_msg(1, kv_str(key, value))
    scope = f_str(1, "envoy") + f_str(2, ENVOY_BUILD)
    return resource, scope


def pb_address(text: str) -> list:
    """envoy.config.core.v3.Address{socket_address{address, port_value}} from "ip:port"."""
    ip, port = text.rsplit(":", 1)
    return f_msg(1, f_str(2, ip) + f_uint(3, int(port)))


def pb_duration(us: int) -> list:
    s, rest = divmod(us, 1_000_000)
    return f_uint(1, s) + f_uint(2, rest * 1000)


def als_entry(rng: random.Random, authority: str, path: str, request_id: str, trace: str, span_id: str,
              parent_id: str | None, status: int, size: int, start_us: int, dur_us: int, upstream_cluster: str,
              downstream_local: str, downstream_remote: str, upstream_host: str, upstream_local: str,
              ua: str) -> list:
    """The fields of one envoy.data.accesslog.v3.HTTPAccessLogEntry as Envoy 1.40 sends it."""
    dur_us = max(dur_us, 200)
    rx = rng.randint(30, 90)
    up_tx = min(rx + rng.randint(100, 250), dur_us // 4)
    up_rx = max(up_tx + 101, dur_us - rng.randint(120, 500))
    down_tx = min(dur_us - 20, up_rx + rng.randint(20, 60))
    secs, rest_us = divmod(start_us, 1_000_000)
    outbound = upstream_cluster.startswith("outbound")
    req_hdr = rng.randint(370, 400) if outbound else rng.randint(262, 290)
    resp_hdr = rng.randint(290, 420)
    common = (
        f_msg(2, pb_address(downstream_remote)) + f_msg(3, pb_address(downstream_local))
        + f_msg(5, [pb_key(1, 0), var_time_als(secs), *f_uint(2, rest_us * 1000)])
        + f_msg(6, pb_duration(rx)) + f_msg(7, pb_duration(up_tx)) + f_msg(8, pb_duration(up_tx + 100))
        + f_msg(9, pb_duration(up_rx)) + f_msg(10, pb_duration(up_rx + rng.randint(40, 120)))
        + f_msg(11, pb_duration(down_tx)) + f_msg(12, pb_duration(min(dur_us - 10, down_tx + rng.randint(60, 240))))
        + f_msg(13, pb_address(upstream_host)) + f_msg(14, pb_address(upstream_local))
        + f_str(15, upstream_cluster) + f_str(19, "default") + f_msg(20, pb_address(downstream_remote))
        + f_msg(23, pb_duration(dur_us)) + f_uint(24, 1) + f_var(26, var_text(request_id))
        + f_uint(29, resp_hdr + size + rng.randint(0, 60)) + f_uint(30, req_hdr + rng.randint(0, 30))
        + f_uint(31, req_hdr + rng.randint(0, 30)) + f_uint(32, resp_hdr + size + rng.randint(0, 60))
        + f_uint(33, 6)  # access_log_type DownstreamEnd
    )
    headers = f_msg(13, f_str(1, "x-b3-traceid") + f_var(2, var_text(trace)))
    headers += f_msg(13, f_str(1, "x-b3-spanid") + f_var(2, var_text(span_id)))
    if parent_id:
        headers += f_msg(13, f_str(1, "x-b3-parentspanid") + f_var(2, var_text(parent_id)))
    request = (f_uint(1, 1) + f_str(2, "http") + f_str(3, authority) + f_str(5, path) + f_str(6, ua)
               + f_var(9, var_text(request_id)) + f_uint(11, req_hdr) + headers
               + f_uint(14, req_hdr + rng.randint(-12, 4)) + f_uint(15, rng.randint(80, 260)))
    response = (f_msg(1, f_uint(1, status)) + f_uint(2, resp_hdr) + f_uint(3, size) + f_str(6, "via_upstream")
                + f_uint(7, resp_hdr - rng.randint(0, 30)) + f_uint(8, resp_hdr + rng.randint(0, 30)))
    return f_msg(1, common) + f_uint(2, 2) + f_msg(3, request) + f_msg(4, response)  # HTTP11


def pb_struct(items: list[tuple[str, object]]) -> list:
    """google.protobuf.Struct from (key, string or nested list of items)."""
    parts: list = []
    for key, value in items:
        if isinstance(value, list):
            v = f_msg(5, pb_struct(value))  # struct_value
        else:
            b = value.encode()
            v = [pb_key(3, 2) + pb_varint(len(b)) + b]  # string_value, written even when empty
        parts += f_msg(1, f_str(1, key) + f_msg(2, v))
    return parts


def pb_decode(buf: bytes) -> list[tuple[int, int, object]]:
    """(field, wire type, value) of one protobuf message; raises ValueError when malformed."""
    out = []
    i, n = 0, len(buf)

    def varint(i: int) -> tuple[int, int]:
        shift = result = 0
        while True:
            if i >= n or shift > 63:
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result, i
            shift += 7

    while i < n:
        key, i = varint(i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wt == 0:
            v, i = varint(i)
        elif wt == 1 or wt == 5:
            size = 8 if wt == 1 else 4
            if i + size > n:
                raise ValueError("truncated fixed field")
            v, i = buf[i:i + size], i + size
        elif wt == 2:
            length, i = varint(i)
            if i + length > n:
                raise ValueError("truncated length-delimited field")
            v, i = buf[i:i + length], i + length
        else:
            raise ValueError(f"wire type {wt}")
        out.append((num, wt, v))
    return out


def pb_all(fields: list, num: int) -> list:
    return [v for f, _, v in fields if f == num]


def pb_one(fields: list, num: int, default=None):
    values = pb_all(fields, num)
    return values[-1] if values else default


def fixture_extensions() -> tuple[list, str]:
    """node.extensions of the captured productpage sidecar (516 entries), or a short stand-in."""
    try:
        first = pb_decode(ALS_FIXTURE_FIRST_MESSAGE.read_bytes())
        node = pb_decode(pb_one(pb_decode(pb_one(first, 1, b"")), 1, b""))
        raw = pb_all(node, 9)
        if raw:
            parts: list = []
            for r in raw:
                parts += f_msg(9, [bytes(r)])
            return parts, f"{len(raw)} extensions from the fixture"
    except (OSError, ValueError, TypeError):
        pass
    parts = []
    for name, category in (("envoy.access_loggers.http_grpc", "envoy.access_loggers"),
                           ("envoy.tracers.opentelemetry", "envoy.tracers"),
                           ("envoy.filters.http.router", "envoy.filters.http")):
        parts += f_msg(9, f_str(1, name) + f_str(2, category))
    return parts, "3 stand-in extensions (fixture not found)"


def als_identifiers() -> tuple[dict[str, bytes], str]:
    """StreamAccessLogsMessage.identifier (field 1) per sidecar, prefixed to a stream's first message."""
    extensions, note = fixture_extensions()
    out = {}
    for w in WORKLOADS:
        metadata = pb_struct([
            ("SERVICE_ACCOUNT", f"bookinfo-{w.service}"), ("MESH_ID", MESH_ID), ("WORKLOAD_NAME", w.name),
            ("LABELS", [("version", w.version), ("security.istio.io/tlsMode", "istio"),
                        ("service.istio.io/canonical-name", w.service),
                        ("service.istio.io/canonical-revision", w.version), ("app", w.service)]),
            ("NAMESPACE", NAMESPACE),
            ("OWNER", f"kubernetes://apis/apps/v1/namespaces/{NAMESPACE}/deployments/{w.name}"),
            ("INTERCEPTION_MODE", "NONE"), ("CLUSTER_ID", CLUSTER_ID), ("INSTANCE_IPS", POD_IP),
            ("NAME", w.pod),
        ])
        build = f_msg(1, f_uint(1, 1) + f_uint(2, 40)) + f_msg(2, pb_struct([
            ("revision.sha", ENVOY_BUILD.split("/")[0]), ("build.type", "RELEASE"),
            ("revision.status", "Clean"), ("ssl.version", "BoringSSL")]))
        node = (f_str(1, w.node_id) + f_str(2, w.service_name) + f_msg(3, metadata) + f_str(6, "envoy")
                + f_msg(8, build) + extensions)
        out[w.name] = b"".join(f_msg(1, f_msg(1, node) + f_str(2, "http_envoy_accesslog")))
    return out, note


def build_rounds(channel: str, per_request: int, count: int, seed: int | None,
                 stream_messages: int = 20) -> list[list[tuple]]:
    """Round templates, per channel:
    zipkin/accesslog: lists of (path, body template, record count);
    otlp: lists of (sidecar, Template of an ExportTraceServiceRequest, span count);
    als: lists of (sidecar, [(Template of a StreamAccessLogsMessage without identifier, entry count), ...]),
    one group per sidecar: the messages of one stream (identifier prepended when sent)."""
    rounds = []
    for k in range(count):
        rng = random.Random(None if seed is None else seed * 1000 + k)
        sim = RoundSimulator(rng, channel)
        if channel == "als":
            # productpage's sidecar reports up to 3 entries per driver request (inbound + 2 outbound):
            # its stream gets about --als-stream-messages messages of --lines-per-request entries.
            sim.run(max(1, min(stream_messages * per_request // 3, 20_000)))
        elif channel == "otlp":
            sim.run(3 * per_request, window_us=OTLP_WINDOW_US)
        else:
            # reviews-v1 sees 1/3 of the driver requests and reports one record each:
            # 3 * per_request driver requests fill every sidecar's batches exactly (but for the 404s).
            sim.run(3 * per_request)
        bodies: list[tuple] = []
        records = sim.spans if channel in ("zipkin", "otlp") else sim.lines
        for w in WORKLOADS:
            items = [rec for _, rec in sorted(records[w.name], key=lambda x: x[0])]
            messages = []
            for i in range(0, len(items), per_request):
                chunk = items[i:i + per_request]
                if channel == "zipkin":
                    body = ("[" + ",".join(chunk) + "]").encode("latin-1")
                    body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
                    bodies.append(("/api/v2/spans", body, len(chunk)))
                elif channel == "accesslog":
                    body = ("\n".join(chunk) + "\n").encode("latin-1")
                    bodies.append(("/api/v1/accesslogs?node=" + urllib.parse.quote(w.node_id, safe=""),
                                   body, len(chunk)))
                elif channel == "otlp":
                    resource, scope = otlp_resource_scope(w)
                    scope_spans = f_msg(1, scope)
                    for span in chunk:
                        scope_spans += f_msg(2, span)
                    bodies.append((w.name, Template(f_msg(1, f_msg(1, resource) + f_msg(2, scope_spans))),
                                   len(chunk)))
                else:  # als: http_logs { log_entry ... }
                    entries: list = []
                    for entry in chunk:
                        entries += f_msg(1, entry)
                    messages.append((Template(f_msg(2, entries)), len(chunk)))
            if channel == "als" and messages:
                bodies.append((w.name, messages))
        rng.shuffle(bodies)
        rounds.append(bodies)
    return rounds


def self_check(channel: str, rounds: list[list[tuple]], identifiers: dict[str, bytes] | None = None) -> None:
    """Decode one materialized round and check the records are what we claim."""
    if channel == "otlp":
        return self_check_otlp(rounds)
    if channel == "als":
        return self_check_als(rounds, identifiers or {})
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


def _check_time(seconds: float, what: str) -> None:
    age = time.time() - seconds
    if not -0.5 <= age <= 60:
        raise AssertionError(f"{what} is {age:.1f} s old (wanted 0-60 s)")


def self_check_otlp(rounds: list[list[tuple]]) -> None:
    """Decode round 0 (own decoder, and opentelemetry-proto when installed) and check it."""
    table = blob_table(HEX, b"0badc0de", otlp_time_hex())
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:
        ExportTraceServiceRequest = None
    node_ids = {w.name: w.node_id for w in WORKLOADS}
    span_ids, parent_ids, seen = set(), set(), set()
    for name, tpl, n in rounds[0]:
        raw = tpl.render(table)
        if len(raw) != tpl.size:
            raise AssertionError("rendered OTLP body has the wrong size")
        rs = pb_all(pb_decode(raw), 1)
        if len(rs) != 1:
            raise AssertionError("one resource_spans per request expected")
        rs_fields = pb_decode(rs[0])
        attrs = {}
        for kv in pb_all(pb_decode(pb_one(rs_fields, 1, b"")), 1):
            f = pb_decode(kv)
            attrs[pb_one(f, 1, b"").decode()] = pb_one(pb_decode(pb_one(f, 2, b"")), 1, b"").decode()
        if attrs.get("service.instance.id") != node_ids[name]:
            raise AssertionError("resource service.instance.id is not the sidecar's node id")
        spans = [pb_decode(x) for ss in pb_all(rs_fields, 2) for x in pb_all(pb_decode(ss), 2)]
        if len(spans) != n:
            raise AssertionError(f"span count {len(spans)} != {n}")
        for sp in spans:
            trace, sid, parent = pb_one(sp, 1, b""), pb_one(sp, 2, b""), pb_one(sp, 4, b"")
            if len(trace) != 16 or len(sid) != 8 or len(parent) not in (0, 8) or (trace, sid) in seen:
                raise AssertionError("bad or duplicate OTLP span id")
            seen.add((trace, sid))
            span_ids.add(sid)
            if parent:
                parent_ids.add(parent)
            start, end = (struct.unpack("<Q", pb_one(sp, i))[0] for i in (7, 8))
            if end < start:
                raise AssertionError("span ends before it starts")
            _check_time(start / 1e9, "OTLP span start")
            sattrs = {}
            for kv in pb_all(sp, 9):
                f = pb_decode(kv)
                sattrs[pb_one(f, 1, b"").decode()] = pb_one(pb_decode(pb_one(f, 2, b"")), 1, b"").decode()
            if sattrs.get("node_id") != node_ids[name] or len(sattrs.get("guid:x-request-id", "")) != 36:
                raise AssertionError("OTLP span attributes node_id / guid:x-request-id wrong")
        if ExportTraceServiceRequest is not None:
            m = ExportTraceServiceRequest.FromString(raw)
            if sum(len(ss.spans) for r in m.resource_spans for ss in r.scope_spans) != n:
                raise AssertionError("opentelemetry-proto sees a different span count")
    if not parent_ids <= span_ids:
        raise AssertionError("a parent span id is not a span of the same round")


def self_check_als(rounds: list[list[tuple]], identifiers: dict[str, bytes]) -> None:
    """Decode round 0's messages (and the identifiers) and check entries, ids, times and pairs."""
    table = blob_table(HEX, b"0badc0de", als_time_hex())
    outbound, inbound = set(), set()
    for name, messages in rounds[0]:
        ident = pb_decode(pb_one(pb_decode(identifiers[name]), 1, b""))
        node = pb_decode(pb_one(ident, 1, b""))
        wl = next(w for w in WORKLOADS if w.name == name)
        if pb_one(node, 1, b"").decode() != wl.node_id or pb_one(node, 2, b"").decode() != wl.service_name:
            raise AssertionError("ALS identifier.node id/cluster wrong")
        for tpl, n in messages:
            raw = tpl.render(table)
            top = pb_decode(raw)
            entries = pb_all(pb_decode(pb_one(top, 2, b"")), 1)
            if len(entries) != n or pb_all(top, 1):
                raise AssertionError("ALS entry count wrong (or identifier inside a template)")
            for e in entries:
                f = pb_decode(e)
                common, req = pb_decode(pb_one(f, 1, b"")), pb_decode(pb_one(f, 3, b""))
                ts = pb_decode(pb_one(common, 5, b""))
                _check_time(pb_one(ts, 1, 0) + pb_one(ts, 2, 0) / 1e9, "ALS start_time")
                rid = pb_one(req, 9, b"").decode()
                if len(rid) != 36 or pb_one(common, 26, b"").decode() != rid:
                    raise AssertionError("ALS request_id / stream_id wrong")
                headers = {}
                for h in pb_all(req, 13):
                    hf = pb_decode(h)
                    headers[pb_one(hf, 1, b"").decode()] = pb_one(hf, 2, b"").decode()
                if len(headers.get("x-b3-traceid", "")) != 32 or len(headers.get("x-b3-spanid", "")) != 16:
                    raise AssertionError("ALS b3 headers wrong")
                int(headers["x-b3-traceid"], 16)
                key = (rid, pb_one(req, 3, b"").decode())
                cluster = pb_one(common, 15, b"").decode()
                (outbound if cluster.startswith("outbound|") else inbound).add(key)
    if not outbound <= inbound:
        raise AssertionError("an outbound ALS entry has no inbound entry with the same request id")


# ---------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------

GRPC_CHANNELS = ("otlp", "als")


class PhaseSpec:
    def __init__(self, channel: str, port: int, rounds, duration: float, timeout: float,
                 identifiers: dict[str, bytes] | None = None, stream_messages: int = 20):
        self.channel = channel
        self.port = port
        self.rounds = rounds
        self.duration = duration
        self.timeout = timeout
        self.identifiers = identifiers or {}  # als: the first message's identifier per sidecar
        self.stream_messages = stream_messages  # als: most messages per stream
        self.salt = random.SystemRandom().getrandbits(32)
        if channel in GRPC_CHANNELS:
            self.headers = []
        elif channel == "zipkin":
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
        "streams_sent": 0, "streams_acked": 0, "records_in_failed_streams": 0,
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
    if spec.channel in GRPC_CHANNELS:
        return run_grpc_worker(spec, windex, nworkers, wait_start)
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


def otlp_partial_success(answer: bytes) -> tuple[int, str]:
    """(rejected_spans, error_message) of an ExportTraceServiceResponse."""
    ps = pb_one(pb_decode(answer), 1)
    if ps is None:
        return 0, ""
    f = pb_decode(ps)
    rejected = pb_one(f, 1, 0)
    if rejected >= 1 << 63:
        rejected -= 1 << 64
    return rejected, bytes(pb_one(f, 2, b"")).decode("utf-8", "replace")


# UNAVAILABLE raised by the gRPC client library itself (no answer from the server)
TRANSPORT_FAILURE = re.compile(r"failed to connect|connection refused|connection reset|socket closed|broken pipe|"
                               r"connections to all backends failing|GOAWAY|endpoint closing", re.I)


def grpc_channel(port: int):
    return grpc.insecure_channel(f"{HOST}:{port}", options=[
        ("grpc.use_local_subchannel_pool", 1),  # one HTTP/2 connection per worker
        ("grpc.enable_retries", 0),
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ("grpc.primary_user_agent", "sextant-loadgen/1"),
    ])


def run_grpc_worker(spec: PhaseSpec, windex: int, nworkers: int, wait_start) -> dict:
    """OTLP: one unary Export per body. ALS: per round and sidecar one client stream of at most
    spec.stream_messages messages (identifier in the first); its entries count once the stream's
    response arrives OK (sextant commits each message before reading the next).

    RESOURCE_EXHAUSTED and UNAVAILABLE count as overloaded: OTLP waits (0.1 s doubling to 2 s,
    bounded by the time left) and sends the same body again; a failed ALS stream is not re-sent
    (Envoy does not either): its entries are counted apart as unacknowledged."""
    res = new_result()
    rng = random.Random(os.urandom(16))
    channel = grpc_channel(spec.port)
    ready_wait = min(10.0, spec.timeout)
    try:
        grpc.channel_ready_future(channel).result(timeout=ready_wait)
    except grpc.FutureTimeoutError:
        res["io_errors"] += 1
        note_sample(res, f"gRPC channel to {HOST}:{spec.port} not connected after {ready_wait:g} s")
    is_otlp = spec.channel == "otlp"
    if is_otlp:
        call = channel.unary_unary(OTLP_METHOD)  # no serializers: bytes in, bytes out
    else:
        call = channel.stream_unary(ALS_METHOD)
    overload_codes = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
    ts_fn = BLOB_TIME[spec.channel]
    lat = res["latencies"]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = wait_start()
    deadline = t0 + spec.duration
    k = 0
    digits = bytearray(HEX)
    backoff = 0.1

    def failed(e) -> bool:
        """Counts a failed call; True when it was an overload answer (after the back-off)."""
        nonlocal backoff
        code = e.code() if hasattr(e, "code") else None
        details = (e.details() if hasattr(e, "details") else str(e)) or ""
        name = code.name if code is not None else type(e).__name__
        if code == grpc.StatusCode.UNAVAILABLE and TRANSPORT_FAILURE.search(details):
            res["io_errors"] += 1  # no answer from sextant: connection refused, reset, closed
            note_sample(res, f"gRPC {name}: {details[:200]}")
            left = deadline - time.monotonic()
            if left > 0:
                time.sleep(min(backoff, left))
            backoff = min(2.0, backoff * 2)
            return True
        if code in overload_codes:
            res["overloaded"] += 1
            note_sample(res, f"gRPC {name}: {details[:200]}")
            left = deadline - time.monotonic()
            if left > 0:
                time.sleep(min(backoff, left))
            backoff = min(2.0, backoff * 2)
            return True
        key = f"gRPC {name}"
        res["http_errors"][key] = res["http_errors"].get(key, 0) + 1
        note_sample(res, f"gRPC {name}: {details[:300]}")
        return False

    try:
        while time.monotonic() < deadline:
            r = windex + k * nworkers
            k += 1
            template = spec.rounds[r % len(spec.rounds)]
            rng.shuffle(digits)
            nonce = b"%08x" % (((r * 0x9E3779B1) ^ spec.salt) & 0xFFFFFFFF)
            table = blob_table(bytes(digits), nonce, ts_fn())
            if is_otlp:
                for _, tpl, nrec in template:
                    if time.monotonic() >= deadline:
                        break
                    body = tpl.render(table)
                    while True:  # re-sends the same body after an overload answer, until the deadline
                        started = time.perf_counter()
                        res["sent_requests"] += 1
                        try:
                            answer, _ = call.with_call(body, timeout=spec.timeout)
                        except grpc.RpcError as e:
                            if failed(e) and time.monotonic() < deadline:
                                continue
                            break
                        lat.append(time.perf_counter() - started)
                        backoff = 0.1
                        res["acked_requests"] += 1
                        try:
                            rejected, message = otlp_partial_success(answer)
                        except ValueError:
                            rejected, message = 0, ""
                            res["unparsed_acks"] += 1
                            note_sample(res, f"OK with an undecodable response ({len(answer)} bytes)")
                        rejected = max(0, min(nrec, rejected))
                        res["acked_records"] += nrec - rejected
                        res["rejected_records"] += rejected
                        if rejected or message:
                            note_sample(res, f"OK partial_success rejected_spans={rejected}: {message[:250]}")
                        break
                continue
            for name, messages in template:
                for c in range(0, len(messages), spec.stream_messages):
                    if time.monotonic() >= deadline:
                        break
                    chunk = messages[c:c + spec.stream_messages]
                    bodies = [tpl.render(table) for tpl, _ in chunk]
                    bodies[0] = spec.identifiers[name] + bodies[0]
                    nrec = sum(n for _, n in chunk)
                    res["streams_sent"] += 1
                    res["sent_requests"] += len(bodies)
                    started = time.perf_counter()
                    try:
                        call.with_call(iter(bodies), timeout=spec.timeout)
                    except grpc.RpcError as e:
                        res["records_in_failed_streams"] += nrec
                        failed(e)
                        continue
                    lat.append(time.perf_counter() - started)
                    backoff = 0.1
                    res["streams_acked"] += 1
                    res["acked_requests"] += len(bodies)
                    res["acked_records"] += nrec
    finally:
        res["t_end"] = time.monotonic()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        res["cpu_s"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        channel.close()
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
        # gRPC channels do not survive fork(): their workers start from a fresh interpreter
        fork = "fork" in methods and spec.channel not in GRPC_CHANNELS
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
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
              server_cpu: float | None, channel: str = "") -> dict:
    total = new_result()
    lat: list[float] = []
    for r in results:
        for key in ("acked_records", "acked_requests", "rejected_records", "overloaded",
                    "io_errors", "unparsed_acks", "reconnects", "sent_requests", "accepted_in_errors",
                    "streams_sent", "streams_acked", "records_in_failed_streams"):
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
        "channel_id": channel,
        "transport": "grpc" if channel in GRPC_CHANNELS else "http",
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
        "streams_sent": total["streams_sent"],
        "streams_acked": total["streams_acked"],
        "records_in_failed_streams": total["records_in_failed_streams"],
        "error_samples": total["samples"],
        "client_cpu_s": round(client_cpu, 2),
        "client_cores": round(client_cpu / seconds, 2),
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 2),
        "server_cores": None if server_cpu is None else round(server_cpu / seconds, 2),
    }


def errors_cell(row: dict) -> str:
    parts = []
    if row["overloaded_responses"]:
        label = "RESOURCE_EXHAUSTED/UNAVAILABLE" if row.get("transport") == "grpc" else "429/503"
        parts.append(f"{label}: {row['overloaded_responses']}")
    if row["rejected_records"]:
        parts.append(f"rejected records: {row['rejected_records']}")
    for status, c in sorted(row["http_errors"].items()):
        parts.append(f"{status}: {c}" if status.startswith("gRPC") else f"HTTP {status}: {c}")
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


def proc_status_mb(pid: int, field: str) -> float | None:
    """A kB field of /proc/<pid>/status (``VmHWM``, ``RssAnon``...) in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_peak_rss_mb(pid: int) -> float | None:
    return proc_status_mb(pid, "VmHWM")


def proc_rss_anon_mb(pid: int) -> float | None:
    """Resident memory not backed by files: the heap, without the database pages SQLite maps."""
    return proc_status_mb(pid, "RssAnon")


class AnonPeakSampler(threading.Thread):
    """Samples a process's RssAnon five times a second and keeps the highest."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, proc_rss_anon_mb(self.pid) or 0.0)


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


def option_port(args: list[str], flag: str) -> int | None:
    """The last value of `flag PORT` / `flag=PORT` in args."""
    port = None
    for i, a in enumerate(args):
        value = a[len(flag) + 1:] if a.startswith(flag + "=") else args[i + 1] if a == flag and i + 1 < len(args) else None
        if value is not None and value.isdigit():
            port = int(value)
    return port


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
        self.grpc_port: int | None = None
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
        self.grpc_port = option_port(self.moved_ports + self.extra_args, "--grpc-port")
        if self.grpc_port is None and not self.auto_ports:
            self.grpc_port = 4317  # sextant's default
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

MODES = {
    "spans": ["zipkin"], "accesslogs": ["accesslog"], "otlp": ["otlp"], "als": ["als"],
    "both": ["zipkin", "accesslog"], "all": ["zipkin", "accesslog", "otlp", "als"],
}
CHANNEL_ORDER = ["zipkin", "accesslog", "otlp", "als"]
CHANNEL_LABEL = {"zipkin": "zipkin spans", "accesslog": "access-log lines", "otlp": "OTLP gRPC spans",
                 "als": "ALS entries"}
SERVER_CHANNEL = {"zipkin": "zipkin", "accesslog": "accesslog", "otlp": "otlp_traces", "als": "als"}


def server_view(http_port: int, timeout: float) -> dict:
    """What sextant says it received: /metrics sextant_received_records_total and the 15 m graph."""
    view: dict = {}
    try:
        status, _, body = http_get(http_port, "/metrics", timeout=timeout)
        if status != 200:
            view["metrics_error"] = f"GET /metrics answered {status}"
        else:
            received: dict = {}
            pattern = re.compile(r'^sextant_received_records_total\{([^}]*)\}\s+(\S+)', re.M)
            for labels, value in pattern.findall(body.decode("utf-8", "replace")):
                lab = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
                ch = received.setdefault(lab.get("channel", "?"), {})
                ch[lab.get("outcome", "?")] = ch.get(lab.get("outcome", "?"), 0) + float(value)
            view["received"] = received
    except (OSError, http.client.HTTPException) as e:
        view["metrics_error"] = f"GET /metrics: {e!r}"
    try:
        status, _, body = http_get(http_port, "/api/v1/graph?window=15m", timeout=timeout)
        if status != 200:
            view["graph_error"] = f"GET /api/v1/graph answered {status}: {body[:200]!r}"
        else:
            graph = json.loads(body)
            edges = graph.get("edges", [])
            by_source: dict = {}
            for e in edges:
                for src in e.get("sources", []):
                    by_source[src] = by_source.get(src, 0) + 1
            view["graph"] = {
                "nodes": len(graph.get("nodes", [])), "edges": len(edges),
                "requests": sum(int(e.get("requests", 0)) for e in edges),
                "edges_by_source": by_source,
                "edge_list": [f"{e.get('source')} -> {e.get('target')} ({e.get('requests')} req, "
                              f"{e.get('errors')} err, sources {','.join(e.get('sources', []))})" for e in edges],
            }
    except (OSError, http.client.HTTPException, ValueError) as e:
        view["graph_error"] = f"GET /api/v1/graph: {e!r}"
    return view


def verify_notes(rows: list[dict], view: dict) -> list[str]:
    """Disagreements between what the client saw acknowledged and what sextant reports."""
    notes = []
    received = view.get("received")
    for r in rows:
        name = SERVER_CHANNEL.get(r["channel_id"])
        if received is None or name is None or not r["records_acked"]:
            continue
        accepted = received.get(name, {}).get("accepted", 0)
        if accepted < r["records_acked"]:
            notes.append(f"sextant counts {accepted:.0f} accepted {name} records but acknowledged "
                         f"{r['records_acked']} to loadgen")
    graph = view.get("graph")
    if graph is not None:
        want = {"zipkin": "spans", "otlp": "spans", "accesslog": "accesslog", "als": "als"}
        for r in rows:
            src = want.get(r["channel_id"])
            if r["records_acked"] and src and not graph["edges_by_source"].get(src):
                notes.append(f"no edge of /api/v1/graph?window=15m has source {src!r} "
                             f"after {r['records_acked']} acknowledged {r['channel']}")
    return notes


def server_view_lines(view: dict, rows: list[dict], own_instance: bool) -> list[str]:
    lines = []
    if "received" in view:
        parts = [f"{ch} {v.get('accepted', 0):.0f}/{v.get('rejected', 0):.0f}"
                 for ch, v in sorted(view["received"].items())]
        lines.append("sextant /metrics sextant_received_records_total accepted/rejected: "
                     + (", ".join(parts) if parts else "none"))
        if own_instance:  # a fresh instance: its counters hold this run only
            ratios = [f"{SERVER_CHANNEL[r['channel_id']]} {view['received'].get(SERVER_CHANNEL[r['channel_id']], {}).get('accepted', 0) / r['records_acked']:.2f}"
                      for r in rows if r["records_acked"] and r["channel_id"] in SERVER_CHANNEL]
            if ratios:
                lines.append("  accepted per record loadgen saw acknowledged: " + ", ".join(ratios)
                             + " (sextant counts a span's derived call as a record too)")
    if "graph" in view:
        g = view["graph"]
        srcs = ", ".join(f"{k} {v}" for k, v in sorted(g["edges_by_source"].items())) or "none"
        lines.append(f"sextant /api/v1/graph?window=15m: {g['nodes']} nodes, {g['edges']} edges, "
                     f"{g['requests']} requests; edges per source: {srcs}")
    for key in ("metrics_error", "graph_error"):
        if key in view:
            lines.append(f"sextant: {view[key]}")
    return lines


def staleness_note(binary: Path) -> str | None:
    """A note when Swift sources under <repo>/Sources changed after the binary was built."""
    try:
        built = binary.stat().st_mtime
        newer = [f for f in (REPO_ROOT / "Sources").rglob("*.swift") if f.stat().st_mtime > built]
    except OSError:
        return None
    if not newer:
        return None
    age = max(f.stat().st_mtime for f in newer) - built
    return (f"{display_path(binary)} is older than {len(newer)} Swift source file(s) under Sources/ "
            f"(newest change {age / 60:.0f} min after the build): it may be stale")


def default_binary() -> Path:
    release = REPO_ROOT / ".build" / "release" / "sextant"
    return release if release.exists() else REPO_ROOT / ".build" / "debug" / "sextant"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="loadgen.py",
        description="Envoy-like load for Sextant's ingest: Zipkin and access logs over HTTP, OTLP traces and "
                    "ALS over gRPC (127.0.0.1 only).",
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
    p.add_argument("--target-grpc", type=int, metavar="PORT",
                   help="gRPC port (OTLP, ALS) of a running sextant")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per channel (default 10)")
    p.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections (default 4)")
    p.add_argument("--spans-per-request", type=int, default=50,
                   help="spans per Zipkin POST / OTLP Export (default 50)")
    p.add_argument("--lines-per-request", type=int, default=200,
                   help="lines per access-log POST / entries per ALS message (default 200)")
    p.add_argument("--als-stream-messages", type=int, default=20,
                   help="most messages per ALS stream (default 20)")
    p.add_argument("--mode", default="all", metavar="MODE",
                   help="channels, comma-separated: spans (Zipkin), accesslogs (HTTP upload), otlp (OTLP/gRPC "
                        "traces), als (Envoy gRPC access log service); both = spans,accesslogs; "
                        "all = all four (default)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip reading /metrics and /api/v1/graph after the run")
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
    if not 1 <= a.als_stream_messages <= 1000:
        p.error("--als-stream-messages must be in [1, 1000]")
    wanted: set[str] = set()
    for m in a.mode.split(","):
        m = m.strip()
        if m not in MODES:
            p.error(f"--mode: unknown channel {m!r} (use {', '.join(MODES)})")
        wanted.update(MODES[m])
    a.channels = [c for c in CHANNEL_ORDER if c in wanted]
    external = a.target_http is not None or a.target_zipkin is not None or a.target_grpc is not None
    if external and a.sextant_bin is not None:
        p.error("use either --sextant-bin or --target-http/--target-zipkin/--target-grpc")
    if external:
        if "zipkin" in a.channels and a.target_zipkin is None:
            p.error("--target-zipkin is needed for the spans channel")
        if "accesslog" in a.channels and a.target_http is None:
            p.error("--target-http is needed for the accesslogs channel")
        if any(c in GRPC_CHANNELS for c in a.channels) and a.target_grpc is None and grpc is not None:
            p.error("--target-grpc is needed for the otlp/als channels")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    channels = []
    skipped = []
    for ch in args.channels:
        if ch in GRPC_CHANNELS and grpc is None:
            skipped.append((ch, CHANNEL_LABEL[ch]))
            continue
        per = args.spans_per_request if ch in ("zipkin", "otlp") else args.lines_per_request
        channels.append((ch, CHANNEL_LABEL[ch], per))
    skip_line = None
    if skipped:
        skip_line = (f"skipped: {', '.join(label for _, label in skipped)}: the Python package grpcio is not "
                     f"importable by {sys.executable} ({GRPC_IMPORT_ERROR}); run "
                     f"`.venv/bin/python scripts/loadgen.py` (scripts/setup-test-env.sh builds .venv)")
        print(f"loadgen: {skip_line}", file=sys.stderr)
        if not channels:
            return 2

    # pre-generate everything before any clock starts
    t_gen = time.monotonic()
    templates = {}
    identifiers: dict[str, bytes] = {}
    identity_note = None
    if any(ch == "als" for ch, _, _ in channels):
        identifiers, identity_note = als_identifiers()
    for ch, _, per in channels:
        templates[ch] = build_rounds(ch, per, args.templates, args.seed, args.als_stream_messages)
        self_check(ch, templates[ch], identifiers)
    gen_seconds = time.monotonic() - t_gen

    sextant = None
    info: dict = {}
    server_pid = None
    anon_sampler = None
    grpc_port = None
    if args.target_http is None and args.target_zipkin is None and args.target_grpc is None:
        binary = args.sextant_bin or default_binary()
        if not binary.exists():
            print(f"loadgen: sextant binary not found: {display_path(binary)} "
                  f"(build it, or pass --sextant-bin / --target-http --target-zipkin --target-grpc)",
                  file=sys.stderr)
            return 2
        info["version"] = sextant_version(binary)
        info["binary"] = display_path(binary)
        parts = Path(os.path.abspath(binary)).parts
        info["build"] = "release" if "release" in parts else "debug" if "debug" in parts else "unknown"
        info["stale_note"] = staleness_note(binary)
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
        http_port, zipkin_port, grpc_port = sextant.http_port, sextant.zipkin_port, sextant.grpc_port
        server_pid = sextant.proc.pid
        if grpc_port is None and any(ch in GRPC_CHANNELS for ch, _, _ in channels):
            print("loadgen: `sextant serve --help` lists no --grpc-port; cannot run the otlp/als channels",
                  file=sys.stderr)
            sextant.stop()
            return 2
        info["started_by_loadgen"] = True
        info["other_ports"] = " ".join(sextant.moved_ports)
    else:
        http_port, zipkin_port, grpc_port = args.target_http, args.target_zipkin, args.target_grpc
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
    info["http_port"], info["zipkin_port"], info["grpc_port"] = http_port, zipkin_port, grpc_port

    rows = []
    exit_code = 0
    view = None
    try:
        if server_pid:
            anon_sampler = AnonPeakSampler(server_pid)
            anon_sampler.start()
        for ch, label, _ in channels:
            port = {"zipkin": zipkin_port, "accesslog": http_port}.get(ch, grpc_port)
            spec = PhaseSpec(ch, port, templates[ch], args.duration, args.timeout,
                             identifiers=identifiers if ch == "als" else None,
                             stream_messages=args.als_stream_messages)
            srv0 = proc_cpu_seconds(server_pid) if server_pid else None
            results, seconds, client_cpu = run_phase(spec, args.connections, args.workers)
            srv1 = proc_cpu_seconds(server_pid) if server_pid else None
            server_cpu = srv1 - srv0 if srv0 is not None and srv1 is not None else None
            rows.append(summarize(label, results, seconds, client_cpu, server_cpu, ch))
            if sextant and sextant.proc.poll() is not None:
                info["sextant_exit"] = f"sextant exited with code {sextant.proc.returncode} during the {label} run"
                break
        if not args.no_verify and http_port is not None and (sextant is None or sextant.proc.poll() is None):
            view = server_view(http_port, max(10.0, args.timeout))
    except KeyboardInterrupt:
        info["interrupted"] = True
        exit_code = 130
    finally:
        if sextant:
            if server_pid:
                info["server_peak_rss_mb"] = proc_peak_rss_mb(server_pid)
                if anon_sampler:
                    anon_sampler.done.set()
                    info["server_peak_anon_mb"] = anon_sampler.peak
            alive = sextant.proc.poll() is None
            code = sextant.stop()
            info["sextant_stop"] = (f"stopped with SIGTERM, exit code {code}" if alive
                                    else f"had already exited with code {code}")
            troubled = any(r["http_errors"] or r["io_errors"] or r["records_in_failed_streams"] for r in rows)
            if not alive or troubled or code not in (0, None, -signal.SIGTERM):
                info["sextant_log_tail"] = sextant.log_highlights()

    params = {
        "mode": args.mode, "duration_s": args.duration, "connections": args.connections,
        "workers": args.workers, "spans_per_request": args.spans_per_request,
        "lines_per_request": args.lines_per_request, "templates": args.templates,
        "body_generation_s": round(gen_seconds, 2),
    }
    if any(ch == "als" for ch, _, _ in channels):
        params["als_stream_messages"] = args.als_stream_messages
        params["als_identifier"] = identity_note
    checks = verify_notes(rows, view) if view is not None else []
    cpu_count = os.cpu_count()
    if exit_code == 0 and (not rows or any(r["records_acked"] == 0 for r in rows) or len(rows) < len(channels)):
        exit_code = 1

    if args.json:
        print(json.dumps({"sextant": info, "cpu_count": cpu_count, "python": sys.version.split()[0],
                          "params": params, "results": rows, "skipped": skip_line, "server_view": view,
                          "server_view_warnings": checks}, indent=2))
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
             if info["started_by_loadgen"]
             else f"running instance on {HOST} http {http_port} / zipkin {zipkin_port} / grpc {grpc_port}")
    als_part = (f", ALS streams of at most {args.als_stream_messages} messages"
                if any(ch == "als" for ch, _, _ in channels) else "")
    print(f"sextant: {info['version']} ({where}); CPUs: {cpu_count}; mode {args.mode}, "
          f"{args.duration:g} s per channel, {args.connections} connections ({args.workers} workers), "
          f"{args.spans_per_request} spans/request, {args.lines_per_request} lines/request{als_part}; "
          f"Python {sys.version.split()[0]}")
    if skip_line:
        print(skip_line)
    if info.get("stale_note"):
        print(f"note: {info['stale_note']}")
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
        if r["channel_id"] == "als":
            extra += (f"; requests = messages, p50/p99 = per stream (open to response)"
                      + (f"; {r['records_in_failed_streams']} entries in failed streams (not acked; messages "
                         f"sextant read before the failure may be stored)" if r["records_in_failed_streams"] else ""))
            print(f"{r['channel']}: {r['streams_acked']}/{r['streams_sent']} streams acked "
                  f"({r['requests_acked']}/{r['requests_sent']} messages); {cpu}{extra}")
        else:
            print(f"{r['channel']}: {r['requests_acked']}/{r['requests_sent']} requests acked; {cpu}{extra}")
        if args.workers == "thread" and r["client_cores"] >= 0.9:
            print(f"  note: the client used ~{r['client_cores']:.2f} cores; it may be the bottleneck "
                  f"(try --workers process or larger batches)")
        for s in r["error_samples"]:
            print(f"  answer/error sample: {s}")
        if (r["transport"] == "grpc" and not r["requests_acked"] and r["io_errors"] and info["started_by_loadgen"]
                and any("onnection refused" in s for s in r["error_samples"])):
            print(f"  hint: nothing accepted connections on sextant's --grpc-port {grpc_port}; "
                  f"this binary may predate its gRPC receivers")
    if view is not None:
        for line in server_view_lines(view, rows, info["started_by_loadgen"]):
            print(line)
    for line in checks:
        print(f"WARNING: {line}")
    if info.get("readyz", 200) != 200:
        print(f"sextant: GET /readyz answered {info['readyz']}")
    for key in ("sextant_exit", "sextant_stop"):
        if key in info:
            print(f"sextant: {info[key]}")
    if info.get("server_peak_rss_mb"):
        print(f"sextant peak RSS: {info['server_peak_rss_mb']:.0f} MB (with the database pages it maps for reads); "
              f"peak anonymous RSS: {info.get('server_peak_anon_mb', 0):.0f} MB")
    if info.get("sextant_log_tail"):
        print("sextant log (error lines, or its tail):\n" + info["sextant_log_tail"])
    if info.get("interrupted"):
        print("interrupted")
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
