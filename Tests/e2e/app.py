"""One workload of the end-to-end test mesh: a tiny HTTP application.

Each workload runs this file as its own process, behind its own Envoy
sidecar. Inbound traffic arrives from the sidecar's inbound listener; calls to
other services go to the sidecar's outbound listener with a ``Host`` header
such as ``details:9080``, which Envoy routes to the right cluster.

The app keeps exact counts of what it did and serves them, unproxied, at
``GET /__counts`` on its own port:

    {"workload": ..., "received": n, "receivedByCode": {"200": n, ...},
     "calls": [{"destination": "<x-workload of the answer>", "code": 200,
                "count": n}, ...]}

Behaviour is chosen by command-line flags (see ``parse_args``); mesh.py
starts one process per workload.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS_PATH = "/__counts"


class Counters:
    """Thread-safe counters for one workload."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.received_by_code: dict[int, int] = {}
        self.calls: dict[tuple[str, int], int] = {}

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
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000.0)
            forwarded = {h: self.headers[h] for h in PROPAGATED_HEADERS if self.headers.get(h)}
            upstream = {}
            for service in args.call:
                code, destination = client.get(service, f"/{service}/0", forwarded)
                counters.record_call(destination, code)
                upstream[service] = code
            if args.fail_every and number % args.fail_every == 0:
                self._send(500, {"workload": args.workload, "error": "injected failure"})
                return
            self._send(200, {"workload": args.workload, "request": number, "upstream": upstream})

    return Handler


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--port", type=int, required=True, help="port to serve on (127.0.0.1)")
    parser.add_argument("--outbound-port", type=int, default=0, help="the sidecar's outbound listener")
    parser.add_argument("--call", action="append", default=[], help="service to call per request (repeatable)")
    parser.add_argument("--fail-every", type=int, default=0, help="answer 500 to every Nth request")
    parser.add_argument("--delay-ms", type=int, default=0, help="sleep this long per request")
    parser.add_argument("--known-path", action="append", default=[],
                        help="answer 404 without calling anyone for other paths (repeatable)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.call and not args.outbound_port:
        parser.error("--call needs --outbound-port")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    counters = Counters()
    client = OutboundClient(args.outbound_port, f"sextant-e2e-{args.workload}")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args, counters, client))
    server.daemon_threads = True
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    import signal

    # SIGTERM ends the process quietly (mesh.py stops apps that way).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main(sys.argv[1:]))
