"""One workload of the end-to-end test mesh: a tiny HTTP application.

Each workload runs this file as its own process, behind its own Envoy
sidecar. Inbound traffic arrives from the sidecar's inbound listener; calls to
other services go to the sidecar's outbound listener with a ``Host`` header
such as ``details:9080``, which Envoy routes to the right cluster.

The app keeps exact counts of what it did and serves them, unproxied, at
``GET /__counts`` on its own port:

    {"workload": ..., "received": n, "receivedByCode": {"200": n, ...},
     "calls": [{"destination": "<x-workload of the answer>", "code": 200,
                "count": n}, ...],
     "tcp": {"calls": [{"destination": "<workload named in the reply>",
                        "connections": n, "bytesSent": n, "bytesReceived": n}, ...],
             "failures": n,
             "served": {"connections": n, "bytesReceived": n, "bytesSent": n}}}

TCP: with ``--tcp-call SERVICE`` the app opens one plain TCP connection per
request it handles to its sidecar's outbound tcp_proxy listener, sends one
line, reads the one-line answer and closes. With ``--tcp-echo-port`` it also
serves that line protocol (a stand-in for a database): for each line
``<payload>\n`` received it answers ``<workload> <payload><payload>\n``, so
the answer names the workload and is longer than the request. ``served``
counts connections once they are closed.

Behaviour is chosen by command-line flags (see ``parse_args``); mesh.py
starts one process per workload. A running app's faults can be changed on its
own port, unproxied and uncounted: ``POST /_fault?fail_every=N&delay_ms=M``
sets ``--fail-every`` and ``--delay-ms`` from then on (a parameter left out is
kept; 0 turns it off), ``delay_max_ms=H`` sets ``--delay-max-ms``, and it
answers the settings now in force as JSON.

Delays: ``--delay-ms`` alone sleeps that long per request; with
``--delay-max-ms`` above it, request number n sleeps
``delay_ms + (delay_max_ms - delay_ms) * frac(n * 0.618...)`` ms, a
sequence that spreads the delays evenly over the range (every stretch of
consecutive requests fills it about uniformly) and is the same on every run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import urllib.parse
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS_PATH = "/__counts"
FAULT_PATH = "/_fault"
FAULT_SETTINGS = ("fail_every", "delay_ms", "delay_max_ms")
# frac(n * GOLDEN) for n = 1, 2, ... spreads evenly over [0, 1) (a low-discrepancy sequence).
GOLDEN = (5 ** 0.5 - 1) / 2


def delay_seconds(number: int, delay_ms: int, delay_max_ms: int) -> float:
    """The delay of request ``number``: ``delay_ms``, or spread over [delay_ms, delay_max_ms]."""
    if delay_max_ms <= delay_ms:
        return delay_ms / 1000.0
    return (delay_ms + (delay_max_ms - delay_ms) * ((number * GOLDEN) % 1.0)) / 1000.0


class Counters:
    """Thread-safe counters for one workload."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.received_by_code: dict[int, int] = {}
        self.calls: dict[tuple[str, int], int] = {}
        # destination -> [connections, bytes sent, bytes received]
        self.tcp_calls: dict[str, list[int]] = {}
        self.tcp_failures = 0
        self.tcp_served = [0, 0, 0]  # connections, bytes received, bytes sent

    def next_request_number(self) -> int:
        with self._lock:
            self.received += 1
            return self.received

    def record_answer(self, code: int) -> None:
        with self._lock:
            self.received_by_code[code] = self.received_by_code.get(code, 0) + 1

    def record_call(self, destination: str, code: int) -> None:
        key = (destination, code)
        with self._lock:
            self.calls[key] = self.calls.get(key, 0) + 1

    def record_tcp_call(self, destination: str, sent: int, received: int) -> None:
        with self._lock:
            totals = self.tcp_calls.setdefault(destination, [0, 0, 0])
            totals[0] += 1
            totals[1] += sent
            totals[2] += received

    def record_tcp_failure(self) -> None:
        with self._lock:
            self.tcp_failures += 1

    def record_tcp_served(self, received: int, sent: int) -> None:
        with self._lock:
            self.tcp_served[0] += 1
            self.tcp_served[1] += received
            self.tcp_served[2] += sent

    def snapshot(self, workload: str) -> dict:
        with self._lock:
            return {
                "workload": workload,
                "received": self.received,
                "receivedByCode": {str(k): v for k, v in sorted(self.received_by_code.items())},
                "calls": [
                    {"destination": dest, "code": code, "count": count}
                    for (dest, code), count in sorted(self.calls.items())
                ],
                "tcp": {
                    "calls": [
                        {"destination": dest, "connections": c, "bytesSent": sent, "bytesReceived": got}
                        for dest, (c, sent, got) in sorted(self.tcp_calls.items())
                    ],
                    "failures": self.tcp_failures,
                    "served": dict(zip(("connections", "bytesReceived", "bytesSent"), self.tcp_served)),
                },
            }


class OutboundClient:
    """Calls other services through the sidecar's outbound listener.

    One keep-alive connection per (thread, service) keeps Envoy's downstream
    connection count small.
    """

    def __init__(self, outbound_port: int, user_agent: str) -> None:
        self._port = outbound_port
        self._user_agent = user_agent
        self._local = threading.local()

    def _connection(self, service: str) -> http.client.HTTPConnection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(service)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
            conns[service] = conn
        return conn

    def _drop(self, service: str) -> None:
        conn = self._local.conns.pop(service, None)
        if conn is not None:
            conn.close()

    def get(self, service: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        """GET ``path`` on ``service``; returns (status, x-workload or '').

        A transport failure is returned as status 0 with no workload; it is
        never retried, since a retry could count one call twice. The harness
        treats any status 0 as a broken run.
        """
        request_headers = dict(headers)
        request_headers["Host"] = f"{service}:9080"
        request_headers["User-Agent"] = self._user_agent
        conn = self._connection(service)
        try:
            conn.request("GET", path, headers=request_headers)
            response = conn.getresponse()
            response.read()
        except (http.client.HTTPException, OSError) as exc:
            self._drop(service)
            print(f"call to {service}{path} failed: {exc!r}", file=sys.stderr, flush=True)
            return 0, ""
        if (response.getheader("connection") or "").lower() == "close":
            self._drop(service)
        return response.status, response.getheader("x-workload") or ""


def tcp_exchange(port: int, payload: bytes, timeout: float = 10.0) -> tuple[str, int, int]:
    """One connection to the outbound tcp_proxy listener: send one line, read the answer, close.

    Returns (workload named in the answer, bytes sent, bytes received);
    raises OSError or ValueError when the exchange is not as the protocol says.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError(f"connection closed after {len(answer)} bytes of the answer")
            answer += chunk
    destination, _, echoed = answer.partition(b" ")
    if echoed != payload[:-1] * 2 + b"\n":
        raise ValueError(f"unexpected answer {answer[:200]!r}")
    return destination.decode(), len(payload), len(answer)


def serve_tcp_echo(workload: str, port: int, counters: Counters) -> socketserver.ThreadingTCPServer:
    """Start the line-echo server (in a thread); its socket is listening when this returns."""
    prefix = workload.encode() + b" "

    class EchoHandler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            received = sent = 0
            try:
                while True:
                    line = self.rfile.readline()
                    if not line:
                        break
                    received += len(line)
                    if not line.endswith(b"\n"):
                        break  # the peer closed in the middle of a line
                    answer = prefix + line[:-1] * 2 + b"\n"
                    self.wfile.write(answer)
                    self.wfile.flush()
                    sent += len(answer)
            except OSError as exc:
                print(f"tcp echo: {exc!r}", file=sys.stderr, flush=True)
            finally:
                counters.record_tcp_served(received, sent)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return server


# Headers an application must copy from its inbound request to its outbound
# calls so that Envoy joins the spans of one trace (Istio's list for Zipkin).
PROPAGATED_HEADERS = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
)


def make_handler(args: argparse.Namespace, counters: Counters, client: OutboundClient):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "sextant-e2e-app"
        sys_version = ""

        def log_message(self, format: str, *fmt_args) -> None:  # noqa: A002
            if args.verbose:
                super().log_message(format, *fmt_args)

        def _send(self, code: int, body: dict, count: bool = True) -> None:
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-workload", args.workload)
            self.end_headers()
            self.wfile.write(payload)
            if count:
                counters.record_answer(code)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == COUNTS_PATH:
                self._send(200, counters.snapshot(args.workload), count=False)
                return
            number = counters.next_request_number()
            if args.known_path and path not in args.known_path:
                self._send(404, {"workload": args.workload, "error": "not found"})
                return
            if args.delay_ms or args.delay_max_ms:
                time.sleep(delay_seconds(number, args.delay_ms, args.delay_max_ms))
            forwarded = {h: self.headers[h] for h in PROPAGATED_HEADERS if self.headers.get(h)}
            upstream = {}
            for service in args.call:
                code, destination = client.get(service, f"/{service}/0", forwarded)
                counters.record_call(destination, code)
                upstream[service] = code
            for service in args.tcp_call:
                # Payload sizes vary with the request number, so byte totals are not a multiple of anything.
                payload = f"find {service} {args.workload} #{number} ".encode() + b"x" * (number % 37) + b"\n"
                try:
                    destination, sent, got = tcp_exchange(args.tcp_outbound_port, payload)
                except (OSError, ValueError) as exc:
                    counters.record_tcp_failure()
                    print(f"tcp exchange with {service} failed: {exc!r}", file=sys.stderr, flush=True)
                else:
                    counters.record_tcp_call(destination, sent, got)
            if args.fail_every and number % args.fail_every == 0:
                self._send(500, {"workload": args.workload, "error": "injected failure"})
                return
            self._send(200, {"workload": args.workload, "request": number, "upstream": upstream})

        def do_POST(self) -> None:  # noqa: N802
            path, _, query = self.path.partition("?")
            if path != FAULT_PATH:
                self.send_error(501, f"Unsupported method ('{self.command}')")
                return
            try:
                settings = {key: int(values[-1]) for key, values in urllib.parse.parse_qs(query).items()
                            if key in FAULT_SETTINGS}
                if any(v < 0 for v in settings.values()):
                    raise ValueError("negative setting")
            except ValueError as exc:
                self._send(400, {"workload": args.workload, "error": str(exc)}, count=False)
                return
            for key, value in settings.items():
                setattr(args, key, value)
            self._send(200, {"workload": args.workload, **{key: getattr(args, key) for key in FAULT_SETTINGS}},
                       count=False)

    return Handler


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--port", type=int, required=True, help="port to serve on (127.0.0.1)")
    parser.add_argument("--outbound-port", type=int, default=0, help="the sidecar's outbound listener")
    parser.add_argument("--call", action="append", default=[], help="service to call per request (repeatable)")
    parser.add_argument("--fail-every", type=int, default=0, help="answer 500 to every Nth request")
    parser.add_argument("--delay-ms", type=int, default=0, help="sleep this long per request")
    parser.add_argument("--delay-max-ms", type=int, default=0,
                        help="spread the delays evenly from --delay-ms up to this (0: a fixed delay)")
    parser.add_argument("--known-path", action="append", default=[],
                        help="answer 404 without calling anyone for other paths (repeatable)")
    parser.add_argument("--tcp-outbound-port", type=int, default=0, help="the sidecar's outbound tcp_proxy listener")
    parser.add_argument("--tcp-call", action="append", default=[],
                        help="service to open one TCP connection to per request (repeatable)")
    parser.add_argument("--tcp-echo-port", type=int, default=0, help="also serve the line-echo protocol here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.call and not args.outbound_port:
        parser.error("--call needs --outbound-port")
    if args.tcp_call and not args.tcp_outbound_port:
        parser.error("--tcp-call needs --tcp-outbound-port")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    counters = Counters()
    client = OutboundClient(args.outbound_port, f"sextant-e2e-{args.workload}")
    echo = serve_tcp_echo(args.workload, args.tcp_echo_port, counters) if args.tcp_echo_port else None
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args, counters, client))
    server.daemon_threads = True
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if echo is not None:
            echo.shutdown()
            echo.server_close()
    return 0


if __name__ == "__main__":
    import signal

    # SIGTERM ends the process quietly (mesh.py stops apps that way).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main(sys.argv[1:]))
