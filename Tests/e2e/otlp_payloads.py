"""Hand-made OTLP trace requests for the end-to-end tests (protobuf and OTLP/JSON).

One request holds one call between two SDK-instrumented services: the
caller's CLIENT span and the callee's SERVER span (child of the CLIENT span),
each service in its own ``resource_spans`` with ``service.name`` and
``service.namespace``. The same call can be encoded as protobuf
(``opentelemetry-proto``) or as OTLP/JSON (hex ids, enum numbers, 64-bit
integers as strings), so a test can compare what sextant makes of each.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
STATUS_CODE_ERROR = 2


@dataclass
class Call:
    client: str
    server: str
    namespace: str
    http_status: int = 200
    trace_id: bytes = b""
    client_span_id: bytes = b""
    server_span_id: bytes = b""
    start_ns: int = 0

    def __post_init__(self) -> None:
        self.trace_id = self.trace_id or os.urandom(16)
        self.client_span_id = self.client_span_id or os.urandom(8)
        self.server_span_id = self.server_span_id or os.urandom(8)
        self.start_ns = self.start_ns or time.time_ns() - 50_000_000

    @property
    def failed(self) -> bool:
        return self.http_status >= 500

    def _spans(self) -> list[dict]:
        """Both spans as plain data: (service, span id, parent id, kind, name, start, end, attributes)."""
        return [
            {
                "service": self.client, "span_id": self.client_span_id, "parent": b"", "kind": SPAN_KIND_CLIENT,
                "name": "POST", "start": self.start_ns, "end": self.start_ns + 20_000_000,
                "attributes": {"http.request.method": "POST", "server.address": self.server, "server.port": 8080,
                               "http.response.status_code": self.http_status},
            },
            {
                "service": self.server, "span_id": self.server_span_id, "parent": self.client_span_id,
                "kind": SPAN_KIND_SERVER, "name": "POST /api", "start": self.start_ns + 2_000_000,
                "end": self.start_ns + 18_000_000,
                "attributes": {"http.request.method": "POST", "http.route": "/api",
                               "http.response.status_code": self.http_status},
            },
        ]

    def to_proto(self) -> ExportTraceServiceRequest:
        request = ExportTraceServiceRequest()
        for span in self._spans():
            resource = Resource(attributes=[
                KeyValue(key="service.name", value=AnyValue(string_value=span["service"])),
                KeyValue(key="service.namespace", value=AnyValue(string_value=self.namespace)),
            ])
            attributes = [
                KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v))
                for k, v in span["attributes"].items()
            ]
            proto_span = Span(
                trace_id=self.trace_id, span_id=span["span_id"], parent_span_id=span["parent"],
                name=span["name"], kind=span["kind"], start_time_unix_nano=span["start"],
                end_time_unix_nano=span["end"], attributes=attributes,
            )
            if self.failed:
                proto_span.status.CopyFrom(Status(code=STATUS_CODE_ERROR, message="server error"))
            request.resource_spans.append(ResourceSpans(
                resource=resource, scope_spans=[ScopeSpans(spans=[proto_span])]))
        return request

    def to_json(self) -> dict:
        """The OTLP/JSON form of ``to_proto()``."""
        resource_spans = []
        for span in self._spans():
            json_span = {
                "traceId": self.trace_id.hex(),
                "spanId": span["span_id"].hex(),
                "name": span["name"],
                "kind": span["kind"],
                "startTimeUnixNano": str(span["start"]),
                "endTimeUnixNano": str(span["end"]),
                "attributes": [
                    {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                    for k, v in span["attributes"].items()
                ],
            }
            if span["parent"]:
                json_span["parentSpanId"] = span["parent"].hex()
            if self.failed:
                json_span["status"] = {"code": STATUS_CODE_ERROR, "message": "server error"}
            resource_spans.append({
                "resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": span["service"]}},
                    {"key": "service.namespace", "value": {"stringValue": self.namespace}},
                ]},
                "scopeSpans": [{"spans": [json_span]}],
            })
        return {"resourceSpans": resource_spans}
