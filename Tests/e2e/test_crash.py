"""Crash test: every record sextant acknowledged survives a SIGKILL.

All rounds share one data directory, so every start but the first recovers the
WAL of a killed process. A round:

1. starts ``sextant serve`` on that data directory (new free ports) and waits
   for ``/readyz``;
2. checks ``sextant.db`` while sextant runs: every record acknowledged in the
   rounds before is there (spans by ``(trace_id, span_id)`` as ``sextant
   span-ids`` lists them, access-log calls by the hash of their ``x-request-id``
   as ``sextant call-ids`` lists them) and ``PRAGMA integrity_check`` (Python's
   sqlite3, read-only) says ``ok``;
3. posts one Zipkin batch and one access-log batch and wants them accepted
   (the restarted server takes new data);
4. runs sender threads -- two posting Envoy-like Zipkin batches of 20 spans to
   ``/api/v2/spans``, two posting Istio JSON access-log batches of 50 lines to
   ``/api/v1/accesslogs?node=...`` -- each on its own keep-alive connection,
   back to back, and kills sextant with SIGKILL at a random moment 0.3-1.5 s
   after they started.

After the last round sextant is started once more and checked the same way,
then stopped with SIGTERM, and the closed database is checked again; its
daily rollups must count exactly the calls stored (the rollups a kill cut off
before they were written are folded in again from the call blocks).

A record counts as acknowledged only once the 2xx answer to its request has
been read completely: Zipkin's 202 (sent after the commit), or the access-log
200 whose ``accepted`` equals the lines sent. A request cut off by the kill
(reset, refused, half an answer) counts as nothing; sextant may or may not
have stored it. 429/503 answers are re-sent with the same body. Unlike real
Envoy traffic every access-log line has its own ``x-request-id``, so one id
names exactly one stored call.

Environment:
  SEXTANT_CRASH_ROUNDS  kill/restart rounds (default 10, the CI mode; e.g. 100 for a longer run)
  SEXTANT_CRASH_SEED    seed of the kill moments, sidecar order and ids (default: random; printed)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sextant import Sextant, http_request, sextant_binary

ROUNDS = int(os.environ.get("SEXTANT_CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("SEXTANT_CRASH_SEED") or random.SystemRandom().getrandbits(32))

ZIPKIN_SENDERS = 2
ACCESS_LOG_SENDERS = 2
SPANS_PER_BATCH = 20
LINES_PER_BATCH = 50
KILL_AFTER_S = (0.3, 1.5)
REQUEST_TIMEOUT_S = 15.0
JOIN_TIMEOUT_S = 30.0
OVERLOAD_PAUSE_S = 0.05
SHOW_MISSING = 200  # ids listed in the failure message; all of them go to a file next to the data

NAMESPACE = "default"
POD_IP = "127.0.0.1"
SERVICE_PORT = 9080
INBOUND_CLUSTER = f"inbound|{SERVICE_PORT}||"


# --------------------------------------------------------------------------
# Envoy-like records


@dataclass(frozen=True)
class Sidecar:
    """One simulated Istio sidecar: the workload it fronts and the services its app calls."""

    index: int
    service: str
    version: str
    pod: str
    calls: tuple[str, ...]

    @property
    def workload(self) -> str:
        return f"{self.service}-{self.version}"

    @property
    def node_id(self) -> str:
        return f"sidecar~{POD_IP}~{self.pod}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"

    @property
    def inbound_address(self) -> str:
        return f"{POD_IP}:{23006 + 100 * self.index}"

    @property
    def outbound_address(self) -> str:
        return f"{POD_IP}:{23001 + 100 * self.index}"

    @property
    def app_address(self) -> str:
        return f"{POD_IP}:{23080 + 100 * self.index}"

    @property
    def user_agent(self) -> str:
        return f"bookinfo-{self.service}/{self.version}"


SIDECARS = (
    Sidecar(1, "productpage", "v1", "productpage-v1-5f8d7c9b6d-q2xkm", ("details", "reviews")),
    Sidecar(2, "details", "v1", "details-v1-7d4b9c8f5c-w8znr", ()),
    Sidecar(3, "reviews", "v2", "reviews-v2-6c9f8b7d4d-m5tgh", ("ratings",)),
    Sidecar(4, "ratings", "v1", "ratings-v1-84c6d5b9f7-x7vjp", ()),
)
CALLEE_INBOUND = {s.service: s.inbound_address for s in SIDECARS}


def outbound_cluster(service: str) -> str:
    return f"outbound|{SERVICE_PORT}||{service}.{NAMESPACE}.svc.cluster.local"


def request_path(service: str) -> str:
    return "/productpage" if service == "productpage" else f"/{service}/0"


class Records:
    """Fresh random ids and Envoy-like Zipkin spans / Istio JSON access-log lines."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def hex_id(self, digits: int) -> str:
        return f"{self.rng.getrandbits(4 * digits):0{digits}x}"

    def request_id(self) -> str:
        # Envoy's x-request-id: a UUID whose version nibble is 9 (traced)
        r = self.hex_id(32)
        return f"{r[:8]}-{r[8:12]}-9{r[13:16]}-{self.rng.choice('89ab')}{r[17:20]}-{r[20:]}"

    def ephemeral(self) -> str:
        return f"{POD_IP}:{self.rng.randint(32768, 60999)}"

    def status(self, service: str) -> int:
        return 500 if service == "ratings" and self.rng.random() < 0.1 else 200

    # -- Zipkin ---------------------------------------------------------------

    def span(self, sidecar: Sidecar, kind: str, trace_id: str, span_id: str, parent_id: str | None,
             service: str, start_us: int, duration_us: int, status: int, request_id: str) -> dict:
        cluster = INBOUND_CLUSTER if kind == "SERVER" else outbound_cluster(service)
        tags = {
            "component": "proxy",
            "downstream_cluster": "-",
            "guid:x-request-id": request_id,
            "http.method": "GET",
            "http.protocol": "HTTP/1.1",
            "http.status_code": str(status),
            "http.url": f"http://{service}:{SERVICE_PORT}{request_path(service)}",
            "istio.canonical_revision": sidecar.version,
            "istio.canonical_service": sidecar.service,
            "istio.cluster_id": "Kubernetes",
            "istio.mesh_id": "cluster.local",
            "istio.namespace": NAMESPACE,
            "node_id": sidecar.node_id,
            "peer.address": POD_IP,
            "request_size": "0",
            "response_flags": "-",
            "response_size": str(self.rng.randint(20, 60)),
            "upstream_cluster": cluster,
            "upstream_cluster.name": cluster,
            "user_agent": sidecar.user_agent,
        }
        if status >= 500:
            tags["error"] = "true"
        span = {"traceId": trace_id, "id": span_id}
        if parent_id is not None:
            span["parentId"] = parent_id
        span.update({
            "kind": kind,
            "name": f"{service}.{NAMESPACE}.svc.cluster.local:{SERVICE_PORT}/*",
            "timestamp": start_us,
            "duration": duration_us,
            "localEndpoint": {"serviceName": f"{sidecar.service}.{NAMESPACE}", "ipv4": POD_IP, "port": 0},
            "annotations": [{"timestamp": start_us + duration_us, "value": "ss" if kind == "SERVER" else "cr"}],
            "tags": tags,
        })
        return span

    def zipkin_batch(self, sidecar: Sidecar, count: int) -> tuple[bytes, list[tuple[str, str]]]:
        """``count`` spans of one sidecar, as Envoy's Zipkin tracer batches them: per request it
        handled a SERVER span and a CLIENT span per call its app made. Returns (JSON body, ids)."""
        spans: list[dict] = []
        now_us = time.time_ns() // 1000
        while len(spans) < count:
            server_id = self.hex_id(16)
            if sidecar.service == "productpage":  # the root: Envoy's trace id ends with the root span id
                trace_id, parent_id = self.hex_id(16) + server_id, None
            else:
                trace_id, parent_id = self.hex_id(32), self.hex_id(16)
            request_id = self.request_id()
            start = now_us - self.rng.randint(50_000, 2_000_000)
            duration = self.rng.randint(2_000, 40_000)
            spans.append(self.span(sidecar, "SERVER", trace_id, server_id, parent_id, sidecar.service,
                                   start, duration, self.status(sidecar.service), request_id))
            for callee in sidecar.calls:
                spans.append(self.span(sidecar, "CLIENT", trace_id, self.hex_id(16), server_id, callee,
                                       start + 300, duration // 2, self.status(callee), request_id))
        spans = spans[:count]
        body = json.dumps(spans, separators=(",", ":")).encode()
        return body, [(s["traceId"], s["id"]) for s in spans]

    # -- access logs ----------------------------------------------------------

    def line(self, sidecar: Sidecar, service: str, inbound: bool, start_us: int, duration_ms: int) -> dict:
        status = self.status(service)
        secs, micros = divmod(start_us, 1_000_000)
        start = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        if inbound:
            cluster, local, host = INBOUND_CLUSTER, sidecar.inbound_address, sidecar.app_address
        else:
            cluster, local, host = outbound_cluster(service), sidecar.outbound_address, CALLEE_INBOUND[service]
        return {
            "authority": f"{service}:{SERVICE_PORT}",
            "bytes_received": 0,
            "bytes_sent": self.rng.randint(20, 60),
            "connection_termination_details": None,
            "downstream_local_address": local,
            "downstream_remote_address": self.ephemeral(),
            "duration": duration_ms,
            "method": "GET",
            "path": request_path(service),
            "protocol": "HTTP/1.1",
            "request_id": self.request_id(),
            "requested_server_name": None,
            "response_code": status,
            "response_code_details": "via_upstream",
            "response_flags": "-",
            "route_name": "default",
            "start_time": f"{start}.{micros // 1000:03d}Z",
            "trace_id": self.hex_id(32),
            "upstream_cluster": cluster,
            "upstream_host": host,
            "upstream_local_address": self.ephemeral(),
            "upstream_service_time": str(max(0, duration_ms - 1)),
            "upstream_transport_failure_reason": None,
            "user_agent": sidecar.user_agent,
            "x_forwarded_for": None,
        }

    def access_log_batch(self, sidecar: Sidecar, count: int) -> tuple[bytes, list[str]]:
        """``count`` NDJSON lines of one sidecar: per request it handled an inbound line and an
        outbound line per call its app made. Returns (body, request ids)."""
        lines: list[dict] = []
        now_us = time.time_ns() // 1000
        while len(lines) < count:
            start = now_us - self.rng.randint(50_000, 2_000_000)
            duration_ms = self.rng.randint(2, 40)
            lines.append(self.line(sidecar, sidecar.service, True, start, duration_ms))
            for callee in sidecar.calls:
                lines.append(self.line(sidecar, callee, False, start + 300, duration_ms // 2))
        lines = lines[:count]
        body = "".join(json.dumps(x, sort_keys=True, separators=(",", ":")) + "\n" for x in lines).encode()
        return body, [x["request_id"] for x in lines]


# --------------------------------------------------------------------------
# Senders


class Sender(threading.Thread):
    """Posts batches of one kind back to back on one keep-alive connection until ``stop``.

    ``acked`` gets (id, monotonic time of the ack) for every record of a request whose 2xx
    answer was read completely. The first failed request after ``killed`` ends the thread
    (it counts in ``cut_off``); any other failure or unexpected answer is kept in
    ``problems`` and also ends it.
    """

    def __init__(self, kind: str, sextant: Sextant, first: int, records: Records,
                 go: threading.Event, stop: threading.Event, killed: threading.Event) -> None:
        super().__init__(name=f"crash-{kind}-{first}", daemon=True)
        self.kind = kind
        self.port = sextant.zipkin_port if kind == "zipkin" else sextant.http_port
        self.next_sidecar = first
        self.records = records
        self.go, self.stop, self.killed = go, stop, killed
        self.acked: list[tuple[object, float]] = []
        self.requests_acked = 0
        self.overloaded = 0
        self.cut_off = 0  # requests without a complete 2xx answer because of the kill
        self.problems: list[str] = []

    def batch(self) -> tuple[str, dict, bytes, list]:
        sidecar = SIDECARS[self.next_sidecar % len(SIDECARS)]
        self.next_sidecar += 1
        if self.kind == "zipkin":
            body, ids = self.records.zipkin_batch(sidecar, SPANS_PER_BATCH)
            # what Envoy's Zipkin tracer sends: one chunked POST per batch
            headers = {"Host": "zipkin:9411", "Content-Type": "application/json", "Transfer-Encoding": "chunked",
                       "x-envoy-internal": "true", "x-forwarded-for": POD_IP}
            return "/api/v2/spans", headers, body, ids
        body, ids = self.records.access_log_batch(sidecar, LINES_PER_BATCH)
        headers = {"Content-Type": "application/x-ndjson", "Content-Length": str(len(body))}
        return "/api/v1/accesslogs?" + urllib.parse.urlencode({"node": sidecar.node_id}), headers, body, ids

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            self.go.wait()
            while not self.stop.is_set():
                path, headers, body, ids = self.batch()
                while not self.stop.is_set():
                    outcome = self.post(conn, path, headers, body, len(ids))
                    if outcome == "acked":
                        now = time.monotonic()
                        self.acked.extend((i, now) for i in ids)
                        self.requests_acked += 1
                        break
                    if outcome == "overloaded":
                        self.overloaded += 1
                        time.sleep(OVERLOAD_PAUSE_S)
                        continue
                    return  # cut off by the kill, or a problem
        finally:
            conn.close()

    def post(self, conn: http.client.HTTPConnection, path: str, headers: dict, body: bytes, records: int) -> str:
        try:
            if self.kind == "zipkin":
                conn.request("POST", path, body=iter([body]), headers=headers, encode_chunked=True)
            else:
                conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            if self.killed.is_set():
                self.cut_off += 1
            else:
                self.problems.append(f"{self.name}: {path.split('?')[0]} failed before the kill: {err!r}")
            return "failed"
        if response.status in (429, 503):
            return "overloaded"
        text = answer[:500].decode("utf-8", "replace")
        if self.kind == "zipkin":
            if response.status == 202:
                return "acked"
        elif response.status == 200:
            try:
                counts = json.loads(answer)
                if counts["accepted"] == records and counts["rejected"] == 0:
                    return "acked"
            except (ValueError, KeyError, TypeError):
                pass
        self.problems.append(f"{self.name}: {path.split('?')[0]} answered {response.status} for "
                             f"{records} records: {text}")
        return "failed"


# --------------------------------------------------------------------------
# The ledger of acknowledged records and the database check


@dataclass
class Acked:
    """Every acknowledged record: id -> where it was acknowledged."""

    spans: dict[tuple[str, str], str] = field(default_factory=dict)
    request_ids: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, items, where) -> None:
        target = self.spans if kind == "zipkin" else self.request_ids
        for item, at in items:
            target[item] = where(at)


@dataclass
class Check:
    missing_spans: list[tuple[str, str]]
    missing_request_ids: list[str]
    integrity: list[str]
    spans_in_db: int
    requests_in_db: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.missing_spans and not self.missing_request_ids and self.integrity == ["ok"]


def stored_span_ids(db_path: Path) -> set[tuple[str, str]]:
    """(trace id, span id) of every span stored in the database at ``db_path``."""
    listed = subprocess.run([str(sextant_binary()), "span-ids", "--data-dir", str(db_path.parent), "--log-level", "error"],
                            capture_output=True, text=True, check=True, timeout=300)
    return {tuple(line.split()) for line in listed.stdout.splitlines() if line}


def request_id_hash(request_id: str) -> str:
    """The hash a call's x-request-id is stored as, as 16 hex digits (``sextant call-ids --help``):
    over its UTF-8 bytes, a word of eight (little-endian) at a time, then the bytes left, then a
    final mix."""
    mask = 0xFFFFFFFFFFFFFFFF
    data = request_id.encode()
    value = 0xCBF29CE484222325
    whole = len(data) - len(data) % 8
    for at in range(0, whole, 8):
        value = ((value ^ int.from_bytes(data[at:at + 8], "little")) * 0x100000001B3) & mask
        value ^= value >> 29
    for byte in data[whole:]:
        value = ((value ^ byte) * 0x100000001B3) & mask
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & mask
    value ^= value >> 33
    return f"{value:016x}"


def stored_request_id_hashes(db_path: Path) -> tuple[set[str], int]:
    """The request-id hashes of the calls stored in the database at ``db_path``, and how many calls."""
    listed = subprocess.run([str(sextant_binary()), "call-ids", "--data-dir", str(db_path.parent), "--log-level", "error"],
                            capture_output=True, text=True, check=True, timeout=300)
    lines = [line.split() for line in listed.stdout.splitlines() if line]
    return {fields[2] for fields in lines if fields[2] != "-"}, len(lines)


def rolled_up_calls(db_path: Path) -> int:
    """Calls (HTTP and gRPC) the daily rollups count."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(
            "SELECT coalesce(sum(r.count), 0) FROM call_rollups r JOIN call_series s ON s.id = r.series_id "
            "WHERE r.tier = 86400 AND s.protocol != 2").fetchone()[0]
    finally:
        db.close()


def check_database(db_path: Path, acked: Acked, read_only: bool) -> Check:
    """Which acknowledged records ``db_path`` lacks, and ``PRAGMA integrity_check``."""
    started = time.monotonic()
    # Spans and calls are in compressed blocks: the binary lists them (`sextant span-ids`,
    # `sextant call-ids`; a call's request id is stored as its hash).
    stored_spans = stored_span_ids(db_path)
    missing_spans = [key for key in acked.spans if key not in stored_spans]
    stored_requests, requests_in_db = stored_request_id_hashes(db_path)
    missing_requests = [r for r in acked.request_ids if request_id_hash(r) not in stored_requests]
    target = f"file:{db_path}?mode=ro" if read_only else f"file:{db_path}"
    db = sqlite3.connect(target, uri=True, timeout=30)
    try:
        integrity = [row[0] for row in db.execute("PRAGMA main.integrity_check")]
    finally:
        db.close()
    return Check([tuple(r) for r in missing_spans], missing_requests, integrity,
                 len(stored_spans), requests_in_db, time.monotonic() - started)


# --------------------------------------------------------------------------
# The test


@dataclass
class Round:
    number: int
    kill_after_s: float = 0.0
    spans: int = 0
    lines: int = 0
    requests_acked: int = 0
    cut_off: int = 0
    overloaded: int = 0
    wal_bytes: int | None = None
    last_ack_ms: float | None = None  # the last acknowledgement, before the kill
    start_s: float = 0.0
    check_s: float = 0.0
    final: bool = False  # the start after the last kill: checked, probed, stopped with SIGTERM

    def row(self) -> str:
        start = f"| {'final' if self.final else self.number} | {self.start_s:.2f} | {self.check_s:.2f} |"
        if self.final:
            return start + " - | - | - | - | - | - | - | - |"
        wal = "-" if self.wal_bytes is None else f"{self.wal_bytes}"
        last = "-" if self.last_ack_ms is None else f"{self.last_ack_ms:.1f}"
        return (f"{start} {self.kill_after_s:.2f} | {self.requests_acked} | {self.spans} | {self.lines} | "
                f"{last} | {self.cut_off} | {self.overloaded} | {wal} |")


TABLE_HEAD = ("| round | start s | check s | kill after s | requests acked | spans acked | lines acked | "
              "last ack before kill ms | cut off | 429/503 | WAL bytes at kill |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")


def probe(sextant: Sextant, records: Records, acked: Acked, label: str) -> None:
    """One Zipkin batch and one access-log batch, which the (re)started sextant must accept."""
    sidecar = SIDECARS[0]
    body, span_ids = records.zipkin_batch(sidecar, SPANS_PER_BATCH)
    response = http_request("POST", f"http://127.0.0.1:{sextant.zipkin_port}/api/v2/spans", body=body,
                            headers={"Content-Type": "application/json"}, timeout=REQUEST_TIMEOUT_S)
    assert response.status == 202, f"{label}: the Zipkin batch was not accepted: {response.describe()}"
    acked.add("zipkin", ((i, 0.0) for i in span_ids), lambda _: label)
    body, request_ids = records.access_log_batch(sidecar, LINES_PER_BATCH)
    response = sextant.post_access_log(sidecar.node_id, body)
    assert response.status == 200 and response.json().get("accepted") == len(request_ids), (
        f"{label}: the access-log batch was not accepted: {response.describe()}")
    acked.add("accesslog", ((i, 0.0) for i in request_ids), lambda _: label)


def failure_report(check: Check, acked: Acked, when: str, workdir: Path, table: str) -> str:
    """The missing ids (all of them in a file, the first ones in the message) and the rounds so far."""
    lines = [f"{when}: {len(check.missing_spans)} of {len(acked.spans)} acknowledged spans and "
             f"{len(check.missing_request_ids)} of {len(acked.request_ids)} acknowledged access-log calls "
             f"are missing; PRAGMA integrity_check: {check.integrity[:20]} "
             f"(database: {check.spans_in_db} spans, {check.requests_in_db} calls; seed {SEED})"]
    listing = [f"span trace_id={t} span_id={s} acknowledged {acked.spans[(t, s)]}"
               for t, s in check.missing_spans]
    listing += [f"access-log request_id={r} acknowledged {acked.request_ids[r]}" for r in check.missing_request_ids]
    if listing:
        path = workdir / "missing-ids.txt"
        path.write_text("\n".join(listing) + "\n")
        lines.append(f"missing ({len(listing)}, all of them in {path}):")
        lines += [f"  {x}" for x in listing[:SHOW_MISSING]]
        if len(listing) > SHOW_MISSING:
            lines.append(f"  ... and {len(listing) - SHOW_MISSING} more")
    lines.append(table)
    return "\n".join(lines)


def test_acknowledged_records_survive_sigkill(tmp_path):
    rng = random.Random(SEED)
    records = Records(random.Random(rng.getrandbits(64)))
    workdir = tmp_path / "crash"
    workdir.mkdir()
    sextant = Sextant("crash", workdir)
    db_path = sextant.data_dir / "sextant.db"
    acked = Acked()
    rounds: list[Round] = []
    started = time.monotonic()

    def table() -> str:
        return "\n".join([f"rounds so far (SEXTANT_CRASH_SEED={SEED}):", TABLE_HEAD] + [r.row() for r in rounds])

    def start_and_check(label: str, current: Round | None) -> None:
        t0 = time.monotonic()
        sextant.start()
        if current is not None:
            current.start_s = time.monotonic() - t0
        check = check_database(db_path, acked, read_only=True)
        if current is not None:
            current.check_s = check.seconds
        assert check.ok, failure_report(check, acked, f"{label}, sextant restarted and ready", workdir, table())
        probe(sextant, records, acked, f"{label} (probe batch)")

    try:
        for number in range(1, ROUNDS + 1):
            current = Round(number)
            rounds.append(current)
            start_and_check(f"round {number}", current)

            go, stop, killed = threading.Event(), threading.Event(), threading.Event()
            senders = [Sender("zipkin", sextant, k, Records(random.Random(rng.getrandbits(64))), go, stop, killed)
                       for k in range(ZIPKIN_SENDERS)]
            senders += [Sender("accesslog", sextant, k, Records(random.Random(rng.getrandbits(64))),
                               go, stop, killed) for k in range(ACCESS_LOG_SENDERS)]
            for s in senders:
                s.start()
            current.kill_after_s = rng.uniform(*KILL_AFTER_S)
            try:
                go.set()
                time.sleep(current.kill_after_s)
                assert sextant.running(), (f"round {number}: sextant exited on its own under load "
                                           f"(code {sextant.process.returncode})\n{sextant.report()}")
                killed.set()  # before the signal: every failure from now on is the kill's
                sextant.process.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                sextant.process.wait(timeout=10)
                wal = sextant.data_dir / "sextant.db-wal"
                current.wal_bytes = wal.stat().st_size if wal.exists() else None
                sextant.stop()  # already dead: only forgets the process
            finally:
                stop.set()
            for s in senders:
                s.join(JOIN_TIMEOUT_S)
            stuck = [s.name for s in senders if s.is_alive()]
            assert not stuck, f"round {number}: senders still running {JOIN_TIMEOUT_S:.0f} s after the kill: {stuck}"
            problems = [p for s in senders for p in s.problems]
            assert not problems, (f"round {number}: unexpected answers or failures:\n" + "\n".join(problems[:20])
                                  + f"\n{table()}")

            def where(at: float, number=number, killed_at=killed_at) -> str:
                return f"in round {number}, {killed_at - at:.3f} s before the kill"

            for s in senders:
                acked.add(s.kind, s.acked, where)
                current.requests_acked += s.requests_acked
                current.cut_off += s.cut_off
                current.overloaded += s.overloaded
                if s.kind == "zipkin":
                    current.spans += len(s.acked)
                else:
                    current.lines += len(s.acked)
                if s.acked:
                    last = (killed_at - s.acked[-1][1]) * 1000
                    current.last_ack_ms = last if current.last_ack_ms is None else min(current.last_ack_ms, last)
            assert current.spans and current.lines, (
                f"round {number}: nothing of one kind was acknowledged before the kill "
                f"({current.spans} spans, {current.lines} lines): the round tested nothing\n{table()}")

        final = Round(ROUNDS + 1, final=True)
        rounds.append(final)
        start_and_check(f"after round {ROUNDS}", final)
        assert sextant.running(), f"sextant exited after the last probe\n{sextant.report()}"
        code = sextant.stop()
        assert code == 0, f"sextant stopped with SIGTERM exited with {code}\n{sextant.report()}"
        check = check_database(db_path, acked, read_only=False)
        assert check.ok, failure_report(check, acked, "after the final SIGTERM stop", workdir, table())
        # Rollups killed before they were written were folded in again from the call blocks, and
        # none twice: they count exactly the stored calls.
        rolled = rolled_up_calls(db_path)
        assert rolled == check.requests_in_db, (
            f"after the final SIGTERM stop the daily rollups count {rolled} calls, the call blocks hold "
            f"{check.requests_in_db}\n{table()}")
    finally:
        sextant.stop()

    print(f"\ncrash test: {ROUNDS} SIGKILL rounds in {time.monotonic() - started:.1f} s (seed {SEED}); "
          f"{len(acked.spans)} spans and {len(acked.request_ids)} access-log calls acknowledged, all found; "
          f"database at the end: {check.spans_in_db} spans, {check.requests_in_db} calls; "
          f"integrity_check ok, rollups equal the calls\n{table()}")
