"""A small shop instrumented with the OpenTelemetry Python SDK, for Sextant's end-to-end tests.

No Envoy here: two services, ``frontend`` and ``checkout``, each with its own
``TracerProvider``/``LoggerProvider`` (so each has its own resource), build a
few traces in this one process:

    frontend  SERVER  GET /cart/checkout           (root)
      frontend  CLIENT  POST /checkout             -> W3C traceparent ->
        checkout  SERVER  POST /checkout           (status ERROR on every ``--error-every``th trace)
          checkout  CLIENT  SELECT orders          (db.system=postgresql, db.name=orders; no server side)
          checkout  CLIENT  INSERT orders          (only when the checkout succeeds)

Resources: frontend has ``service.name=frontend`` and ``service.namespace=shop``;
checkout has ``service.name=checkout`` and ``k8s.namespace.name=shop`` (the
other way a namespace is named). Each service also writes a few log records
through Python's ``logging`` and the SDK's ``LoggingHandler`` inside its
spans, so they carry trace and span ids.

Every span and log record is exported by every exporter chosen on the
command line; like two separate processes, each service has exporters of its
own (batch processors, then ``force_flush`` and ``shutdown``):

    --traces-grpc HOST:PORT     OTLPSpanExporter over gRPC (insecure)
    --traces-http URL           OTLPSpanExporter over HTTP/protobuf (URL ends in /v1/traces)
    --logs-grpc HOST:PORT       OTLPLogExporter over gRPC (insecure)
    --logs-http URL             OTLPLogExporter over HTTP/protobuf (URL ends in /v1/logs)

It prints one JSON object: what it built (the ground truth of the graph),
what each exporter's every ``export`` call returned, every HTTP response the
HTTP exporters got (status, content type, start of the body) and anything the
exporters logged. The exit code is 0 even when exports failed; the caller
judges.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

# The exporters must talk to 127.0.0.1 directly, whatever proxy the environment names.
for _name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "grpc_proxy", "all_proxy", "ALL_PROXY"):
    os.environ.pop(_name, None)
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: E402
from opentelemetry.sdk._logs import export as logs_export  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: E402

LogRecordExporter = getattr(logs_export, "LogRecordExporter", None) or logs_export.LogExporter
BatchLogRecordProcessor = logs_export.BatchLogRecordProcessor

FRONTEND = "frontend"
CHECKOUT = "checkout"
NAMESPACE = "shop"
DATABASE = "orders"  # db.name of the database checkout calls: the virtual node's service
DB_SERVER_ADDRESS = "orders-db.shop.svc.cluster.local"
EXPORT_TIMEOUT_S = 5
HTTP_RESPONSES: list[dict] = []  # every response the HTTP exporters received


def recording_session(exporter: str):
    """A requests session for an HTTP exporter: no proxy, and every response is noted in HTTP_RESPONSES."""
    import requests

    session = requests.Session()
    session.trust_env = False

    def note(response, *args, **kwargs):
        HTTP_RESPONSES.append({
            "exporter": exporter,
            "request": f"{response.request.method} {response.request.url}",
            "requestContentType": response.request.headers.get("Content-Type"),
            "status": response.status_code,
            "contentType": response.headers.get("Content-Type"),
            "body": response.content[:300].decode("utf-8", errors="replace"),
        })

    session.hooks["response"].append(note)
    return session


class RecordingSpanExporter(SpanExporter):
    """Delegates to a real exporter and remembers what every export call returned."""

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self.results: list[dict] = []

    def export(self, spans):
        started = time.monotonic()
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            self.results.append({"items": len(spans), "result": f"exception {exc!r}"})
            return SpanExportResult.FAILURE
        self.results.append({"items": len(spans), "result": result.name,
                             "seconds": round(time.monotonic() - started, 3)})
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RecordingLogExporter(LogRecordExporter):
    """The same for log records."""

    def __init__(self, inner, name: str) -> None:
        self.inner = inner
        self.name = name
        self.results: list[dict] = []

    def export(self, batch):
        started = time.monotonic()
        try:
            result = self.inner.export(batch)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            self.results.append({"items": len(batch), "result": f"exception {exc!r}"})
            return getattr(logs_export, "LogRecordExportResult", getattr(logs_export, "LogExportResult", None)).FAILURE
        self.results.append({"items": len(batch), "result": result.name,
                             "seconds": round(time.monotonic() - started, 3)})
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ExporterLogCapture(logging.Handler):
    """Keeps what the OpenTelemetry exporters log (warnings and errors)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname}: {record.getMessage()}"[:2000])


def span_exporters(args, service: str) -> list[RecordingSpanExporter]:
    exporters = []
    if args.traces_grpc:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        exporters.append(RecordingSpanExporter(
            GrpcSpanExporter(endpoint=args.traces_grpc, insecure=True, timeout=EXPORT_TIMEOUT_S),
            f"traces-grpc/{service}"))
    if args.traces_http:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        exporters.append(RecordingSpanExporter(
            HttpSpanExporter(endpoint=args.traces_http, timeout=EXPORT_TIMEOUT_S,
                             session=recording_session(f"traces-http/{service}")),
            f"traces-http/{service}"))
    return exporters


def log_exporters(args, service: str) -> list[RecordingLogExporter]:
    exporters = []
    if args.logs_grpc:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        exporters.append(RecordingLogExporter(
            GrpcLogExporter(endpoint=args.logs_grpc, insecure=True, timeout=EXPORT_TIMEOUT_S), f"logs-grpc/{service}"))
    if args.logs_http:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

        exporters.append(RecordingLogExporter(
            HttpLogExporter(endpoint=args.logs_http, timeout=EXPORT_TIMEOUT_S,
                            session=recording_session(f"logs-http/{service}")),
            f"logs-http/{service}"))
    return exporters


class Service:
    """One instrumented service: its resource, tracer and Python logger."""

    def __init__(self, name: str, resource: dict, args) -> None:
        self.name = name
        self.resource = Resource.create(resource)
        self.span_exporters = span_exporters(args, name)
        self.log_exporters = log_exporters(args, name)
        self.tracer_provider = TracerProvider(resource=self.resource)
        for exporter in self.span_exporters:
            # One processor per exporter: each gets every span.
            self.tracer_provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        self.tracer = self.tracer_provider.get_tracer(f"shop.{name}", "1.0.0")
        self.logger_provider = LoggerProvider(resource=self.resource)
        for exporter in self.log_exporters:
            self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=500))
        self.logger = logging.getLogger(f"shop.{name}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=self.logger_provider))

    def flush_and_shutdown(self) -> dict:
        flushed = {
            "spans": self.tracer_provider.force_flush(timeout_millis=4 * EXPORT_TIMEOUT_S * 1000),
            "logs": self.logger_provider.force_flush(timeout_millis=4 * EXPORT_TIMEOUT_S * 1000),
        }
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        return flushed


def build_traces(frontend: Service, checkout: Service, traces: int, error_every: int) -> dict:
    """Build the traces; returns the ground truth."""
    propagator = TraceContextTextMapPropagator()
    checkout_errors = db_calls = 0
    trace_ids = []
    log_bodies = {FRONTEND: [], CHECKOUT: []}
    for i in range(1, traces + 1):
        fails = bool(error_every) and i % error_every == 0
        code = 500 if fails else 200
        with frontend.tracer.start_as_current_span("GET /cart/checkout", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET", "http.route": "/cart/checkout", "url.path": "/cart/checkout",
            "url.scheme": "http", "http.response.status_code": 200,
        }) as root:
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
            body = f"checkout requested for cart {i}"
            frontend.logger.info(body)
            log_bodies[FRONTEND].append(body)
            with frontend.tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={
                "http.request.method": "POST", "server.address": CHECKOUT, "server.port": 8080,
                "url.full": f"http://{CHECKOUT}:8080/checkout",
            }) as client:
                headers: dict[str, str] = {}
                propagator.inject(headers)  # what the HTTP client would send
                # --- in checkout, receiving the request ---
                received = propagator.extract(headers)
                with checkout.tracer.start_as_current_span("POST /checkout", context=received,
                                                           kind=SpanKind.SERVER, attributes={
                    "http.request.method": "POST", "http.route": "/checkout", "url.path": "/checkout",
                    "url.scheme": "http",
                }) as server:
                    with checkout.tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT, attributes={
                        "db.system": "postgresql", "db.name": DATABASE, "db.operation": "SELECT",
                        "db.statement": "SELECT id FROM orders WHERE cart = $1",
                        "server.address": DB_SERVER_ADDRESS, "server.port": 5432,
                    }):
                        db_calls += 1
                    if fails:
                        checkout_errors += 1
                        body = f"payment declined for cart {i}"
                        checkout.logger.error(body)
                        server.set_status(Status(StatusCode.ERROR, "payment declined"))
                    else:
                        with checkout.tracer.start_as_current_span("INSERT orders", kind=SpanKind.CLIENT, attributes={
                            "db.system": "postgresql", "db.name": DATABASE, "db.operation": "INSERT",
                            "db.statement": "INSERT INTO orders (cart) VALUES ($1)",
                            "server.address": DB_SERVER_ADDRESS, "server.port": 5432,
                        }):
                            db_calls += 1
                        body = f"order stored for cart {i}"
                        checkout.logger.info(body)
                    log_bodies[CHECKOUT].append(body)
                    server.set_attribute("http.response.status_code", code)
                # --- back in frontend ---
                client.set_attribute("http.response.status_code", code)
                if fails:
                    client.set_status(Status(StatusCode.ERROR))
    return {
        "traces": traces,
        "checkoutErrors": checkout_errors,
        "dbCalls": db_calls,
        "traceIds": trace_ids,
        "logBodies": log_bodies,
        "edges": {
            f"{FRONTEND}->{CHECKOUT}": {"requests": traces, "errors": checkout_errors,
                                        "serverErrors": checkout_errors},
            f"{CHECKOUT}->{DATABASE}": {"requests": db_calls, "errors": 0, "serverErrors": 0},
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces-grpc", default="")
    parser.add_argument("--traces-http", default="")
    parser.add_argument("--logs-grpc", default="")
    parser.add_argument("--logs-http", default="")
    parser.add_argument("--traces", type=int, default=6)
    parser.add_argument("--error-every", type=int, default=3)
    args = parser.parse_args(argv)

    capture = ExporterLogCapture()
    logging.getLogger("opentelemetry").addHandler(capture)
    logging.getLogger("opentelemetry").setLevel(logging.WARNING)

    frontend = Service(FRONTEND, {"service.name": FRONTEND, "service.namespace": NAMESPACE,
                                  "service.version": "1.4.2"}, args)
    checkout = Service(CHECKOUT, {"service.name": CHECKOUT, "k8s.namespace.name": NAMESPACE,
                                  "service.version": "2.0.1"}, args)
    started = time.time()
    truth = build_traces(frontend, checkout, args.traces, args.error_every)
    flushed = {FRONTEND: frontend.flush_and_shutdown(), CHECKOUT: checkout.flush_and_shutdown()}
    report = {
        "truth": truth,
        "startedAt": started,
        "finishedAt": time.time(),
        "flushed": flushed,
        "exports": {e.name: e.results for service in (frontend, checkout)
                    for e in [*service.span_exporters, *service.log_exporters]},
        "httpResponses": HTTP_RESPONSES,
        "exporterLog": capture.lines,
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
