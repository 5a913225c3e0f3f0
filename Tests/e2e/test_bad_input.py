"""End-to-end: sextant refuses malformed OTLP, ALS, statsd and remote-write input and keeps working.

One fresh instance gets truncated protobuf and wrong content types on
OTLP/HTTP, garbage on the OTLP gRPC methods, garbage ALS streams opened
while a small real mesh (productpage-v1 -> details-v1, gRPC ALS only) keeps
streaming to it, malformed statsd lines (counted in
``sextant_statsd_malformed_lines_total`` while valid lines around them are
stored) and remote-write bodies that are not snappy, are corrupt snappy or
hold no WriteRequest (400 each, then a valid one is stored); the mesh's
traffic before and after must still be counted exactly, and ``/readyz``
must still answer.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import time

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from grpc_raw import ALS_STREAM, LOGS_EXPORT, TRACE_EXPORT, client_stream_held_open, unary
from mesh import UNKNOWN, Mesh, TrafficResult, WorkloadSpec, format_edges
from otlp_payloads import Call
from remote_write import snappy_block, uvarint, write_request
from conftest import start_sextant
from sextant import Sextant, edge_counts, wait_until_settled

import grpc  # noqa: E402  (grpc_raw set its environment first)

MINI_MESH = (
    WorkloadSpec("productpage-v1", "productpage", "v1", calls=("details",), known_paths=("/productpage",)),
    WorkloadSpec("details-v1", "details", "v1"),
)
PHASE_REQUESTS = 20
NOT_FOUND_EVERY = 7
ALS_FLUSH_S = 2.0
SETTLE_QUIET_S = 2.0
SETTLE_TIMEOUT_S = 20.0
HOLD_OPEN_S = 8.0  # how long a garbage stream stays open from the client's side

# Field 1 (length-delimited) announcing 100 bytes, followed by 3: cut short.
TRUNCATED_MESSAGE = b"\x0a\x64abc"
# Tag varint 0xffffffff: field 536870911 with wire type 7, which does not exist.
INVALID_WIRE_TYPE = b"\xff\xff\xff\xff\x0f\x01\x02\x03"
GARBAGE = {"truncated": TRUNCATED_MESSAGE, "invalid-wire-type": INVALID_WIRE_TYPE}


def _valid_trace_request() -> bytes:
    return Call(client="bad-input-web", server="bad-input-api", namespace="bad").to_proto().SerializeToString()


def _valid_logs_request() -> bytes:
    request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[
        LogRecord(time_unix_nano=1, body={"string_value": "a log line that is long enough to be cut in half"}),
    ])])])
    return request.SerializeToString()


VALID = {"/v1/traces": (_valid_trace_request, ExportTraceServiceRequest),
         "/v1/logs": (_valid_logs_request, ExportLogsServiceRequest)}


@pytest.fixture(scope="module")
def bad_sextant(e2e_dir, sextant_bin):
    instance = start_sextant("bad-input", e2e_dir, sextant_bin)
    yield instance
    instance.stop()


def test_self_check_garbage_does_not_decode():
    """The harness: every garbage payload really is invalid protobuf."""
    for name, payload in GARBAGE.items():
        for message in (ExportTraceServiceRequest, ExportLogsServiceRequest):
            with pytest.raises(DecodeError):
                message.FromString(payload)
    for path, (build, message) in VALID.items():
        body = build()
        with pytest.raises(DecodeError):
            message.FromString(body[: len(body) // 2])


@pytest.mark.parametrize("path", list(VALID))
def test_otlp_http_truncated_protobuf_is_400(path, bad_sextant):
    build, _ = VALID[path]
    body = build()
    truncated = body[: len(body) // 2]
    response = bad_sextant.post_otlp(path, truncated, "application/x-protobuf")
    assert response.status == 400, (f"{len(truncated)} of {len(body)} bytes of a valid request, "
                                    f"application/x-protobuf: {response.describe()}")


@pytest.mark.parametrize("path", list(VALID))
def test_otlp_http_wrong_content_type_is_415(path, bad_sextant):
    build, _ = VALID[path]
    response = bad_sextant.post_otlp(path, build(), "text/plain")
    assert response.status == 415, f"a valid protobuf body sent as text/plain: {response.describe()}"


@pytest.mark.parametrize("method", [TRACE_EXPORT, LOGS_EXPORT])
@pytest.mark.parametrize("garbage", list(GARBAGE))
def test_grpc_export_garbage_is_invalid_argument(method, garbage, bad_sextant):
    result = unary(bad_sextant.grpc_target, method, GARBAGE[garbage])
    assert result.code == grpc.StatusCode.INVALID_ARGUMENT, f"{garbage} bytes {GARBAGE[garbage]!r}: {result.describe()}"


# -- statsd ---------------------------------------------------------------

STATSD_CLUSTER = "outbound|9080||e2e-statsd.bad.svc.cluster.local"
STATSD_VALID = f"envoy.cluster.{STATSD_CLUSTER}.upstream_rq_200:{{n}}|c"
STATSD_SERIES = f'envoy_cluster_upstream_rq{{cluster_name="{STATSD_CLUSTER}",response_code="200"}}'
# One malformed line per datagram.
MALFORMED_STATSD = {
    "no ':'": b"envoy.cluster.e2e.upstream_rq_200|c",
    "value not a number": b"envoy.cluster.e2e.upstream_rq_200:twelve|c",
    "no type": b"envoy.cluster.e2e.upstream_rq_200:12",
    "unknown type": b"envoy.cluster.e2e.upstream_rq_200:12|q",
    "empty name": b":12|c",
    "sample rate 0": b"envoy.cluster.e2e.upstream_rq_200:12|c|@0",
    "binary": b"\x00\xff\xfe\x01\x7f\x02",
}
# A datagram of three lines: malformed (no type), valid (2), malformed (sample rate 2).
MIXED_DATAGRAM = (b"envoy.cluster.e2e.upstream_rq_200:1\n" + STATSD_VALID.format(n=2).encode()
                  + b"\nenvoy.cluster.e2e.upstream_rq_200:1|c|@2")
MIXED_MALFORMED, MIXED_VALUE = 2, 2
AFTER_VALUE = 5  # the valid datagram sent right after the garbage
STATSD_TIMEOUT_S = 10.0


def test_statsd_malformed_lines_are_counted_and_skipped(bad_sextant):
    before = bad_sextant.self_metric("sextant_statsd_malformed_lines_total") or 0.0
    bad_sextant.send_statsd(list(MALFORMED_STATSD.values()) + [MIXED_DATAGRAM])
    bad_sextant.send_statsd([STATSD_VALID.format(n=AFTER_VALUE).encode()])
    want_malformed = before + len(MALFORMED_STATSD) + MIXED_MALFORMED
    want_value = float(MIXED_VALUE + AFTER_VALUE)
    deadline = time.monotonic() + STATSD_TIMEOUT_S
    while True:
        malformed = bad_sextant.self_metric("sextant_statsd_malformed_lines_total")
        samples = bad_sextant.federate(STATSD_SERIES)
        if (malformed == want_malformed and [s.value for s in samples] == [want_value]) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    assert bad_sextant.running(), f"sextant exited with {bad_sextant.process.returncode}"
    sent = "\n".join(f"  {name}: {payload!r}" for name, payload in MALFORMED_STATSD.items())
    assert malformed == want_malformed, (
        f"sextant_statsd_malformed_lines_total went from {before} to {malformed}, expected {want_malformed}: "
        f"one per datagram of\n{sent}\nand {MIXED_MALFORMED} in {MIXED_DATAGRAM!r}")
    assert [s.value for s in samples] == [want_value], (
        f"/federate?match[]={STATSD_SERIES}: {[str(s) for s in samples]}; expected one series of "
        f"{want_value:g} (the valid line {MIXED_VALUE} between the malformed ones, then {AFTER_VALUE})")


# -- remote write ---------------------------------------------------------

RW_NAME = "e2e_bad_input_remote_write_total"
RW_LABELS = {"__name__": RW_NAME, "job": "e2e-bad-input"}
RW_VALUE = 42.0


def _rw_body(timestamp_ms: int = 1) -> bytes:
    return write_request([(RW_LABELS, [(RW_VALUE, timestamp_ms)])])


def _length_mismatch() -> bytes:
    """A snappy block whose header announces 10 bytes more than its elements hold."""
    body = _rw_body()
    elements = snappy_block(body)[len(uvarint(len(body))):]
    return uvarint(len(body) + 10) + elements


CORRUPT_REMOTE_WRITE = {
    # A length varint of 11 bytes: no snappy block starts like this.
    "not snappy": lambda: b"\xff" * 10 + b"\x01",
    "truncated snappy": lambda: snappy_block(_rw_body())[:-5],
    # Announces 10 bytes, then copies 5 bytes from 16 bytes back in an empty output.
    "copy before the start": lambda: b"\x0a\x05\x10",
    "length mismatch": _length_mismatch,
    # Well-formed snappy around a protobuf that announces 100 bytes and has 3.
    "snappy of a truncated protobuf": lambda: snappy_block(TRUNCATED_MESSAGE),
}


def test_self_check_corrupt_snappy_does_not_decode():
    """The harness: the system libsnappy (the one sextant links) refuses the corrupt bodies and reads the others."""
    path = ctypes.util.find_library("snappy")
    if path is None:
        pytest.skip("no libsnappy to check the hand-made snappy bodies with")
    lib = ctypes.CDLL(path)

    def uncompress(data: bytes) -> bytes | None:
        length = ctypes.c_size_t(0)
        if lib.snappy_uncompressed_length(data, ctypes.c_size_t(len(data)), ctypes.byref(length)) != 0:
            return None
        out = ctypes.create_string_buffer(max(length.value, 1))
        size = ctypes.c_size_t(length.value)
        status = lib.snappy_uncompress(data, ctypes.c_size_t(len(data)), out, ctypes.byref(size))
        return out.raw[:size.value] if status == 0 and size.value == length.value else None

    for case, build in CORRUPT_REMOTE_WRITE.items():
        expected = TRUNCATED_MESSAGE if case == "snappy of a truncated protobuf" else None
        assert uncompress(build()) == expected, case
    assert uncompress(snappy_block(_rw_body())) == _rw_body()


@pytest.mark.parametrize("case", list(CORRUPT_REMOTE_WRITE))
def test_remote_write_bad_body_is_400(case, bad_sextant):
    body = CORRUPT_REMOTE_WRITE[case]()
    response = bad_sextant.remote_write(body)
    assert response.status == 400, f"{case}: body {body[:40]!r} ({len(body)} bytes), snappy: {response.describe()}"
    ready = bad_sextant.get("/readyz", timeout=5)
    assert ready.status == 200, f"after {case}: {ready.describe()}"


def test_remote_write_valid_after_bad_bodies(bad_sextant):
    """Nothing of the refused bodies was stored; a valid write right after is (204, then in /federate)."""
    assert bad_sextant.series(f"{{__name__=\"{RW_NAME}\"}}") == [], "a refused remote write stored a series"
    timestamp_ms = int(time.time() * 1000)
    response = bad_sextant.remote_write(snappy_block(_rw_body(timestamp_ms)))
    assert response.status == 204, response.describe()
    samples = bad_sextant.federate(RW_NAME)
    assert [(s.name, s.labels, s.value, s.timestamp_ms) for s in samples] == [
        (RW_NAME, {"job": "e2e-bad-input"}, RW_VALUE, timestamp_ms)], [str(s) for s in samples]


def _merge(first: TrafficResult, second: TrafficResult) -> TrafficResult:
    answers = dict(first.answers)
    for key, n in second.answers.items():
        answers[key] = answers.get(key, 0) + n
    return TrafficResult(sent=first.sent + second.sent, not_found_sent=first.not_found_sent + second.not_found_sent,
                         answers=answers, started_at=first.started_at, finished_at=second.finished_at)


def _settled_counts(sextant: Sextant, not_before: float) -> dict:
    graph, _ = wait_until_settled(sextant.graph, quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S,
                                  not_before=not_before)
    return edge_counts(graph)


def test_als_garbage_streams_are_closed_while_envoy_streams_keep_working(bad_sextant, e2e_dir):
    """Garbage ALS streams end with an error status; the sidecars' own ALS streams go on being counted."""
    with Mesh(specs=MINI_MESH, workdir=e2e_dir / "mesh-bad-input", als_ports=(bad_sextant.grpc_port,),
              file_logs=False) as mesh:
        first = mesh.drive(PHASE_REQUESTS, not_found_every=NOT_FOUND_EVERY, concurrency=2)
        truth_before = mesh.ground_truth(first)
        before = _settled_counts(bad_sextant, first.finished_at + ALS_FLUSH_S)

        # Both garbage streams at once, while the two sidecars' streams are open.
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(GARBAGE)) as pool:
            futures = {name: pool.submit(client_stream_held_open, bad_sextant.grpc_target, ALS_STREAM,
                                         [payload], HOLD_OPEN_S)
                       for name, payload in GARBAGE.items()}
            garbage_results = {name: f.result() for name, f in futures.items()}

        second = mesh.drive(PHASE_REQUESTS, not_found_every=NOT_FOUND_EVERY, concurrency=2)
        both = _merge(first, second)
        truth_after = mesh.ground_truth(both)
        after = _settled_counts(bad_sextant, second.finished_at + ALS_FLUSH_S)

    problems = []
    if before != truth_before:
        problems.append(f"before the garbage streams the graph was\n{format_edges(before)}\n"
                        f"apps counted\n{format_edges(truth_before)}")
    for name, result in garbage_results.items():
        if result.code in (grpc.StatusCode.OK, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE,
                           grpc.StatusCode.DEADLINE_EXCEEDED) or result.note:
            problems.append(f"ALS stream sending {name} bytes {GARBAGE[name]!r} was not closed by the server "
                            f"with an error: {result.describe()}")
    if after != truth_after:
        problems.append(f"after the garbage streams the graph was\n{format_edges(after)}\n"
                        f"apps counted\n{format_edges(truth_after)}")
    assert not problems, "\n".join(problems)
    assert set(truth_after) == {(UNKNOWN, "productpage-v1"), ("productpage-v1", "details-v1")}


def test_still_ready_after_bad_input(bad_sextant):
    assert bad_sextant.running(), f"sextant exited with {bad_sextant.process.returncode}"
    response = bad_sextant.get("/readyz", timeout=5)
    assert response.status == 200, response.describe()
    # And the gRPC port still takes a valid call.
    result = unary(bad_sextant.grpc_target, TRACE_EXPORT, _valid_trace_request())
    assert result.code == grpc.StatusCode.OK, result.describe()
