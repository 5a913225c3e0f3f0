"""Raw gRPC calls (bytes in, bytes out) for the end-to-end tests, with grpcio.

No generated stubs: a method is called by its path with identity
serializers, so a test can send any bytes, including garbage, and read the
status the server answers.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

# Before grpc is imported: the harness forks (subprocess with preexec_fn) while
# gRPC threads may run; gRPC's fork handlers are not wanted, nor its notes about them.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
ALS_STREAM = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"

# Never through a proxy, whatever the environment says.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


@dataclass
class CallResult:
    method: str
    code: grpc.StatusCode
    details: str
    response: bytes | None
    note: str = ""

    def describe(self) -> str:
        response = "" if self.response is None else f", response {len(self.response)} bytes {self.response[:60]!r}"
        note = f" ({self.note})" if self.note else ""
        return f"{self.method} -> {self.code.name}: {self.details!r}{response}{note}"


def _identity(data: bytes) -> bytes:
    return data


def unary(target: str, method: str, payload: bytes, timeout_s: float = 10.0,
          credentials: grpc.ChannelCredentials | None = None,
          metadata: tuple[tuple[str, str], ...] | None = None) -> CallResult:
    """One unary call carrying ``payload`` as the (already serialized) request message.

    With ``credentials`` (``grpc.ssl_channel_credentials``) the channel speaks TLS.
    """
    channel = (grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS) if credentials is not None
               else grpc.insecure_channel(target, options=CHANNEL_OPTIONS))
    with channel:
        call = channel.unary_unary(method, request_serializer=_identity, response_deserializer=_identity)
        try:
            response = call(payload, timeout=timeout_s, metadata=metadata)
        except grpc.RpcError as err:
            return CallResult(method, err.code(), err.details() or "", None)
        return CallResult(method, grpc.StatusCode.OK, "", response)


def client_stream_held_open(target: str, method: str, messages: list[bytes], hold_s: float) -> CallResult:
    """A client-streaming call that sends ``messages`` and then keeps its side open.

    The request stream does not end by itself for ``hold_s`` seconds, so a
    call that finishes earlier was finished by the server. Afterwards the
    client ends its side and waits a little more for the status.
    """
    release = threading.Event()

    def requests():
        yield from messages
        release.wait(hold_s)

    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        call = channel.stream_unary(method, request_serializer=_identity, response_deserializer=_identity)
        future = call.future(requests(), timeout=hold_s + 10.0)
        note = ""
        try:
            try:
                response = future.result(timeout=hold_s)
            except grpc.FutureTimeoutError:
                note = f"the server had not ended the call after {hold_s:.0f} s; the client then ended its side"
                release.set()
                response = future.result(timeout=10.0)
        except grpc.RpcError as err:
            return CallResult(method, err.code(), err.details() or "", None, note)
        except grpc.FutureTimeoutError:
            future.cancel()
            return CallResult(method, grpc.StatusCode.DEADLINE_EXCEEDED, "no status at all", None, note)
        finally:
            release.set()
        return CallResult(method, grpc.StatusCode.OK, "", response, note)
