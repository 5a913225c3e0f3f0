"""End-to-end: a corpus of bad input, each case answered with a clear 4xx and counted, while valid
traffic goes on.

One fresh instance (``--max-records-per-request 20000``, the other limits at
their defaults) receives, one case after the other: truncated and corrupt
protobuf, wrong content types, invalid UTF-8, a 100 MB body, gzip bombs,
10^6 distinct label values of one metric through remote write, negative
durations, timestamps an hour ahead, too many records, labels and attributes,
and strings longer than the limit. Each case wants its status (400, 413, 415,
or an OTLP partial success) and a message, and the matching counter of
``/metrics`` (``sextant_ingest_rejected_requests_total``,
``sextant_ingest_rejected_records_total``, ``..._truncated_strings_total``,
``..._dropped_attributes_total``) to grow by what was refused.

Meanwhile two senders of the crash test (``test_crash.Sender``) post valid
Zipkin and access-log batches back to back the whole time; at the end every
record they got acknowledged must be in the database, none of their requests
may have failed, and ``PRAGMA integrity_check`` must say ``ok``.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from grpc_raw import METRICS_EXPORT, TRACE_EXPORT, unary
from otlp_payloads import Call
from remote_write import snappy_block, write_request
from sextant import Sextant, SextantError, http_request, parse_exposition
from test_crash import SIDECARS, Acked, Records, Sender, check_database

import grpc  # noqa: E402  (grpc_raw set its environment first)

MAX_RECORDS = 20_000
MAX_STRING = 16 << 10  # the default --max-string-bytes
MAX_ATTRIBUTES = 128  # the default --max-attributes-per-record
MAX_SERIES = 10_000  # the default --max-series-per-metric
DISTINCT_LABEL_VALUES = 1_000_000
HOUR_US = 3600 * 1_000_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The instance, and the valid senders running beside it for the whole module."""
    workdir = tmp_path_factory.mktemp("sextant-bad-input-corpus")
    instance = Sextant("bad-input-corpus", workdir, extra_args=("--max-records-per-request", str(MAX_RECORDS)))
    try:
        instance.start()
    except SextantError as err:
        pytest.fail(str(err), pytrace=False)
    go, stop, killed = threading.Event(), threading.Event(), threading.Event()
    records = Records(random.Random(secrets.randbits(32)))
    senders = [Sender(kind, instance, first, records, go, stop, killed)
               for first, kind in enumerate(("zipkin", "accesslog"))]
    for sender in senders:
        sender.start()
    go.set()
    yield instance, senders, stop
    stop.set()
    for sender in senders:
        sender.join(30)
    instance.stop()


def counters(sextant: Sextant) -> dict[tuple[str, tuple], float]:
    """Every ``sextant_ingest_*`` sample of ``/metrics``: (name, sorted labels) -> value."""
    response = sextant.get("/metrics")
    assert response.status == 200, response.describe()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for s in parse_exposition(response.text) if s.name.startswith("sextant_ingest_")}


class Counted:
    """Reads a counter before and after a case."""

    def __init__(self, sextant: Sextant, name: str, **labels: str) -> None:
        self.sextant, self.name, self.key = sextant, name, (name, tuple(sorted(labels.items())))
        self.before = counters(sextant).get(self.key, 0.0)

    def grew_by(self) -> float:
        return counters(self.sextant).get(self.key, 0.0) - self.before


def zipkin_span(trace_id: str | None = None, **fields) -> dict:
    span = {"traceId": trace_id or secrets.token_hex(16), "id": secrets.token_hex(8), "name": "get /corpus",
            "kind": "SERVER", "timestamp": int(time.time() * 1_000_000), "duration": 1500,
            "localEndpoint": {"serviceName": "corpus"}}
    span.update(fields)
    return span


def post_zipkin(sextant: Sextant, body: bytes, content_type: str = "application/json",
                headers: dict | None = None):
    return http_request("POST", f"http://127.0.0.1:{sextant.zipkin_port}/api/v2/spans", body=body,
                        headers={"Content-Type": content_type, **(headers or {})}, timeout=120)


def assert_clear(response, status: int, *words: str) -> None:
    assert response.status == status, f"expected {status}: {response.describe()}"
    text = response.text.lower()
    for word in words:
        assert word.lower() in text, f"the answer does not say '{word}': {response.describe()}"


# -- whole requests -----------------------------------------------------------


def test_truncated_protobuf(corpus):
    sextant, _, _ = corpus
    body = Call(client="corpus-web", server="corpus-api", namespace="corpus").to_proto().SerializeToString()
    counted = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="otlp_traces", reason="malformed")
    response = sextant.post_otlp("/v1/traces", body[: len(body) // 2], "application/x-protobuf")
    assert_clear(response, 400, "protobuf")
    assert counted.grew_by() == 1


def test_corrupt_protobuf(corpus):
    sextant, _, _ = corpus
    counted = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="otlp_traces", reason="malformed")
    # A tag of field 536870911 with wire type 7, which does not exist.
    response = sextant.post_otlp("/v1/traces", b"\xff\xff\xff\xff\x0f\x01\x02\x03", "application/x-protobuf")
    assert_clear(response, 400, "protobuf")
    assert counted.grew_by() == 1


@pytest.mark.parametrize("content_type", ["application/xml", "image/png"])
def test_wrong_content_type(corpus, content_type):
    sextant, _, _ = corpus
    counted = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="zipkin",
                      reason="unsupported_content_type")
    response = post_zipkin(sextant, json.dumps([zipkin_span()]).encode(), content_type)
    assert_clear(response, 415, "content-type")
    counted_otlp = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="otlp_traces",
                           reason="unsupported_content_type")
    response = sextant.post_otlp("/v1/traces", b"{}", content_type)
    assert_clear(response, 415, "content-type")
    assert (counted.grew_by(), counted_otlp.grew_by()) == (1, 1)


def test_invalid_utf8_in_a_json_span(corpus):
    """The span with the bad string is rejected, the other one of the request stored."""
    sextant, _, _ = corpus
    trace = secrets.token_hex(16)
    counted = Counted(sextant, "sextant_ingest_rejected_records_total", channel="zipkin", reason="invalid")
    body = json.dumps([zipkin_span(trace, name="NAME"), zipkin_span(trace)]).encode()
    response = post_zipkin(sextant, body.replace(b"NAME", b"\xff\xfe\xc3("))
    assert_clear(response, 400, "rejected 1 of 2 spans", "not valid UTF-8")
    assert len(zipkin_trace(sextant, trace)) == 1
    assert counted.grew_by() == 1


def test_invalid_utf8_protobuf_string(corpus):
    sextant, _, _ = corpus
    request = Call(client="corpus-web", server="corpus-api", namespace="corpus").to_proto()
    request.resource_spans[0].scope_spans[0].spans[0].name = "NAME-NAME"
    body = request.SerializeToString().replace(b"NAME-NAME", b"\xff\xfe\xc3(\xa0\xa1\xe2\x28\xa1")
    counted = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="otlp_traces", reason="malformed")
    assert_clear(sextant.post_otlp("/v1/traces", body, "application/x-protobuf"), 400, "protobuf")
    assert counted.grew_by() == 1


def test_invalid_utf8_access_log_line_is_rejected_alone(corpus):
    sextant, _, _ = corpus
    good = json.loads(Records(random.Random(7)).access_log_batch(SIDECARS[0], 2)[0].splitlines()[0])
    lines = [json.dumps(good).encode(), json.dumps(dict(good, request_id="RID")).encode().replace(b"RID", b"\xff\xfe")]
    counted = Counted(sextant, "sextant_ingest_rejected_records_total", channel="accesslog", reason="invalid")
    response = sextant.post_access_log(SIDECARS[0].node_id, b"\n".join(lines))
    assert_clear(response, 400, "line 2")
    assert response.json()["accepted"] == 1
    assert counted.grew_by() == 1


def test_100_mb_body(corpus):
    sextant, _, _ = corpus
    counted = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="zipkin", reason="body_too_large")
    size = 100 << 20
    connection = http.client.HTTPConnection("127.0.0.1", sextant.zipkin_port, timeout=60)
    try:
        connection.putrequest("POST", "/api/v2/spans")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        chunk = b" " * (1 << 20)
        try:
            for _ in range(size // len(chunk)):
                connection.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all
        response = connection.getresponse()
        status, text = response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    assert status == 413 and "exceeds" in text, f"100 MB body: {status} {text[:300]}"
    assert counted.grew_by() == 1


@pytest.mark.parametrize("where", ["zipkin", "otlp"])
def test_gzip_bomb(corpus, where):
    sextant, _, _ = corpus
    bomb = gzip.compress(b"\0" * (256 << 20), compresslevel=9)  # 256 MiB of zeros in about 250 KB
    assert len(bomb) < 1 << 20
    channel = "zipkin" if where == "zipkin" else "otlp_traces"
    counted = Counted(sextant, "sextant_ingest_rejected_requests_total", channel=channel,
                      reason="decompressed_too_large")
    if where == "zipkin":
        response = post_zipkin(sextant, bomb, headers={"Content-Encoding": "gzip"})
    else:
        response = http_request("POST", f"{sextant.otlp_http_url}/v1/traces", body=bomb, timeout=60,
                                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert_clear(response, 413, "exceeds the limit")
    assert counted.grew_by() == 1


def test_too_many_records(corpus):
    sextant, _, _ = corpus
    series = [({"__name__": "corpus_too_many", "i": str(i)}, [(1.0, int(time.time() * 1000))])
              for i in range(MAX_RECORDS + 1)]
    counted = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="remote_write",
                      reason="too_many_records")
    response = sextant.remote_write(snappy_block(write_request(series)))
    assert_clear(response, 413, f"the limit is {MAX_RECORDS}")
    assert counted.grew_by() == 1
    assert sextant.series('{__name__="corpus_too_many"}') == []


# -- single records -----------------------------------------------------------


def test_one_million_distinct_label_values(corpus):
    """The metric keeps its first --max-series-per-metric series; every point of a further series is
    rejected with a 400 naming the limit and counted, and the other metrics of the same requests are stored."""
    sextant, _, _ = corpus
    counted = Counted(sextant, "sextant_ingest_rejected_records_total", channel="remote_write", reason="series_limit")
    now_ms = int(time.time() * 1000)
    per_request = MAX_RECORDS - 1
    statuses: dict[int, int] = {}
    message = ""

    def body(start: int) -> bytes:
        end = min(start + per_request, DISTINCT_LABEL_VALUES)
        series = [({"__name__": "corpus_cardinality", "user": f"u{i}"}, [(1.0, now_ms)]) for i in range(start, end)]
        series.append(({"__name__": "corpus_cardinality_batches", "start": str(start)}, [(1.0, now_ms)]))
        return snappy_block(write_request(series))

    starts = list(range(0, DISTINCT_LABEL_VALUES, per_request))
    with ThreadPoolExecutor(max_workers=1) as builder:  # builds the next body while one is sent
        upcoming = builder.submit(body, starts[0])
        for number in range(len(starts)):
            current = upcoming.result()
            if number + 1 < len(starts):
                upcoming = builder.submit(body, starts[number + 1])
            response = sextant.remote_write(current)
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 400 and not message:
                message = response.text
    requests = -(-DISTINCT_LABEL_VALUES // per_request)
    assert set(statuses) <= {204, 400} and statuses.get(400, 0) >= requests - 1, statuses
    assert "max-series-per-metric" in message, message
    assert counted.grew_by() == DISTINCT_LABEL_VALUES - MAX_SERIES
    assert len(sextant.series('{__name__="corpus_cardinality"}')) == MAX_SERIES
    assert len(sextant.series('{__name__="corpus_cardinality_batches"}')) == requests


def test_negative_durations(corpus):
    sextant, senders, _ = corpus
    trace = secrets.token_hex(16)
    zipkin = Counted(sextant, "sextant_ingest_rejected_records_total", channel="zipkin", reason="negative_duration")
    response = post_zipkin(sextant, json.dumps([zipkin_span(trace), zipkin_span(trace, duration=-5)]).encode())
    assert_clear(response, 400, "rejected 1 of 2 spans", "negative")
    assert len(zipkin_trace(sextant, trace)) == 1

    otlp = Counted(sextant, "sextant_ingest_rejected_records_total", channel="otlp_traces", reason="negative_duration")
    request = Call(client="corpus-web", server="corpus-api", namespace="corpus").to_proto()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.end_time_unix_nano = span.start_time_unix_nano - 1000
    answer = otlp_export(sextant, request)
    assert answer.partial_success.rejected_spans == 1 and "before" in answer.partial_success.error_message, answer

    lines = Records(random.Random(11)).access_log_batch(SIDECARS[0], 2)[0].splitlines()
    bad = json.loads(lines[1])
    bad["duration"] = -3
    access = Counted(sextant, "sextant_ingest_rejected_records_total", channel="accesslog", reason="negative_duration")
    response = sextant.post_access_log(SIDECARS[0].node_id, lines[0] + b"\n" + json.dumps(bad).encode())
    assert_clear(response, 400, "negative")
    assert response.json()["accepted"] == 1
    assert (zipkin.grew_by(), otlp.grew_by(), access.grew_by()) == (1, 1, 1)


def test_timestamps_an_hour_ahead(corpus):
    sextant, senders, _ = corpus
    trace = secrets.token_hex(16)
    future_us = int(time.time() * 1_000_000) + HOUR_US
    zipkin = Counted(sextant, "sextant_ingest_rejected_records_total", channel="zipkin", reason="future_timestamp")
    response = post_zipkin(sextant, json.dumps([zipkin_span(trace), zipkin_span(trace, timestamp=future_us)]).encode())
    assert_clear(response, 400, "rejected 1 of 2 spans", "ahead", "max-clock-skew")
    assert len(zipkin_trace(sextant, trace)) == 1

    otlp = Counted(sextant, "sextant_ingest_rejected_records_total", channel="otlp_traces", reason="future_timestamp")
    request = Call(client="corpus-web", server="corpus-api", namespace="corpus").to_proto()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.start_time_unix_nano += HOUR_US * 1000
    span.end_time_unix_nano += HOUR_US * 1000
    answer = otlp_export(sextant, request)
    assert answer.partial_success.rejected_spans == 1 and "ahead" in answer.partial_success.error_message, answer

    metrics = Counted(sextant, "sextant_ingest_rejected_records_total", channel="remote_write",
                      reason="future_timestamp")
    now_ms = int(time.time() * 1000)
    response = sextant.remote_write(snappy_block(write_request([
        ({"__name__": "corpus_clock", "when": "now"}, [(1.0, now_ms)]),
        ({"__name__": "corpus_clock", "when": "later"}, [(1.0, now_ms + 3600 * 1000)]),
    ])))
    assert_clear(response, 400, "ahead")
    assert [s["when"] for s in sextant.series('{__name__="corpus_clock"}')] == ["now"]
    assert (zipkin.grew_by(), otlp.grew_by(), metrics.grew_by()) == (1, 1, 1)


def test_too_many_or_too_long_labels(corpus):
    sextant, _, _ = corpus
    now_ms = int(time.time() * 1000)
    many = {"__name__": "corpus_labels", **{f"l{i:03}": "x" for i in range(MAX_ATTRIBUTES + 1)}}
    long = {"__name__": "corpus_labels", "long": "x" * (MAX_STRING + 1)}
    fine = {"__name__": "corpus_labels", "ok": "yes"}
    too_many = Counted(sextant, "sextant_ingest_rejected_records_total", channel="remote_write", reason="too_many_labels")
    too_long = Counted(sextant, "sextant_ingest_rejected_records_total", channel="remote_write", reason="label_too_long")
    response = sextant.remote_write(snappy_block(write_request([(s, [(1.0, now_ms)]) for s in (many, long, fine)])))
    assert_clear(response, 400, "rejected 2 series", "labels", "max-string-bytes")
    assert [s.get("ok") for s in sextant.series('{__name__="corpus_labels"}')] == ["yes"]
    assert (too_many.grew_by(), too_long.grew_by()) == (1, 1)


def test_long_strings_and_many_attributes_are_cut_not_refused(corpus):
    sextant, _, _ = corpus
    trace = secrets.token_hex(16)
    tags = {f"tag.{i:03}": str(i) for i in range(MAX_ATTRIBUTES + 72)}
    tags["tag.000"] = "é" * MAX_STRING  # two bytes each: cut at half
    truncated = Counted(sextant, "sextant_ingest_truncated_strings_total", channel="zipkin")
    dropped = Counted(sextant, "sextant_ingest_dropped_attributes_total", channel="zipkin")
    response = post_zipkin(sextant, json.dumps([zipkin_span(trace, tags=tags)]).encode())
    assert response.status == 202, response.describe()
    [span] = zipkin_trace(sextant, trace)
    assert len(span["tags"]) == MAX_ATTRIBUTES
    assert span["tags"]["tag.000"] == "é" * (MAX_STRING // 2)
    assert (truncated.grew_by(), dropped.grew_by()) == (1, 72)


def test_grpc_answers_in_its_own_way(corpus):
    """OTLP over gRPC: a span an hour ahead in a partial success; too many points RESOURCE_EXHAUSTED."""
    sextant, _, _ = corpus
    request = Call(client="corpus-web", server="corpus-api", namespace="corpus").to_proto()
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.start_time_unix_nano += HOUR_US * 1000
    span.end_time_unix_nano += HOUR_US * 1000
    future = Counted(sextant, "sextant_ingest_rejected_records_total", channel="otlp_traces", reason="future_timestamp")
    result = unary(sextant.grpc_target, TRACE_EXPORT, request.SerializeToString())
    assert result.code == grpc.StatusCode.OK, result.describe()
    answer = ExportTraceServiceResponse.FromString(result.response)
    assert answer.partial_success.rejected_spans == 1 and "ahead" in answer.partial_success.error_message, answer

    metrics = ExportMetricsServiceRequest()
    gauge = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="corpus_grpc_points").gauge
    now_ns = time.time_ns()
    for i in range(MAX_RECORDS + 1):
        gauge.data_points.add(time_unix_nano=now_ns, as_double=float(i))
    too_many = Counted(sextant, "sextant_ingest_rejected_requests_total", channel="otlp_metrics",
                       reason="too_many_records")
    result = unary(sextant.grpc_target, METRICS_EXPORT, metrics.SerializeToString(), timeout_s=60)
    assert result.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-records-per-request" in result.details, (
        result.describe())
    assert (future.grew_by(), too_many.grew_by()) == (1, 1)


# -- the valid traffic beside it -----------------------------------------------


def test_valid_senders_were_served_the_whole_time(corpus):
    sextant, senders, stop = corpus
    time.sleep(1.0)
    stop.set()
    for sender in senders:
        sender.join(30)
        assert not sender.is_alive(), f"{sender.name} did not stop"
    problems = [p for sender in senders for p in sender.problems]
    assert not problems, "\n".join(problems)
    assert all(sender.requests_acked > 10 for sender in senders), [(s.name, s.requests_acked) for s in senders]
    acked = Acked()
    for sender in senders:
        acked.add(sender.kind, sender.acked, lambda _: "corpus")
    check = check_database(sextant.data_dir / "sextant.db", acked, read_only=True)
    assert check.ok, (f"missing spans {check.missing_spans[:20]} ({len(check.missing_spans)}), missing calls "
                      f"{check.missing_request_ids[:20]} ({len(check.missing_request_ids)}), integrity {check.integrity}")
    assert sextant.running() and sextant.get("/readyz").status == 200


# -- helpers ---------------------------------------------------------------------


def zipkin_trace(sextant: Sextant, trace_id: str) -> list[dict]:
    response = http_request("GET", f"http://127.0.0.1:{sextant.zipkin_port}/api/v2/trace/{trace_id}")
    assert response.status == 200, response.describe()
    return response.json()


def otlp_export(sextant: Sextant, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    response = sextant.post_otlp("/v1/traces", request.SerializeToString(), "application/x-protobuf")
    assert response.status == 200, response.describe()
    return ExportTraceServiceResponse.FromString(response.body)
