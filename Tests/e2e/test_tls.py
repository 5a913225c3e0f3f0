"""End-to-end: TLS and mTLS on every TCP listener of a real ``sextant serve``.

The certificates are made for each run with the ``openssl`` command in a
temporary directory (nothing is committed): a CA, a server certificate for
127.0.0.1 and localhost signed by it, a client certificate signed by it, and a
second CA with a client certificate of its own. Three instances run:

    tls     --tls-cert-file/--tls-key-file: HTTPS on the API, Zipkin and OTLP/HTTP
            ports, gRPC over TLS; plain clients and clients that do not trust
            the CA fail
    mtls    plus --tls-client-ca-file: only clients with a certificate from the
            CA get in, on HTTP and on gRPC; Envoy sidecars of the mesh send
            Zipkin spans and ALS over mTLS (an UpstreamTlsContext on their
            telemetry clusters) and the graph counts every call
    tokens  TLS plus --ingest-token-file/--query-token-file: 401 and
            UNAUTHENTICATED without the token, over TLS

Bad certificate files must stop ``sextant serve`` at start with a message that
names the file, not crash it.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from grpc_raw import TRACE_EXPORT, unary
from mesh import UNKNOWN, Mesh, format_edges, free_ports
from otlp_payloads import Call
from sextant import Sextant, SextantError, edge_counts, edges_by_workload, http_request, wait_until_settled

MESH_REQUESTS = int(os.environ.get("SEXTANT_E2E_REQUESTS", "150"))
# Envoy sends a Zipkin batch every 5 spans or every 5 s and ALS every second.
TELEMETRY_FLUSH_S = 6.0
SETTLE_QUIET_S = 3.0
SETTLE_TIMEOUT_S = 30.0
INGEST_TOKEN = "ingest-secret-for-tls"
QUERY_TOKEN = "query-secret-for-tls"


# --------------------------------------------------------------------------
# Certificates, made with the openssl command


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: KeyPair
    server: KeyPair
    client: KeyPair
    other_ca: KeyPair
    other_client: KeyPair  # signed by other_ca
    stray_key: Path  # a key that belongs to no certificate here
    not_pem: Path  # a file that holds neither a certificate nor a key


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} -> exit {result.returncode}: "
                           f"{result.stderr.decode(errors='replace')}")


def _new_key_args(key: Path) -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key)]


def _make_ca(directory: Path, name: str) -> KeyPair:
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl("req", "-x509", "-new", *_new_key_args(pair.key), "-out", str(pair.cert), "-days", "2",
             "-subj", f"/CN=Sextant test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    return pair


def _make_leaf(directory: Path, name: str, ca: KeyPair, extensions: str) -> KeyPair:
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    request = directory / f"{name}.csr"
    extension_file = directory / f"{name}.ext"
    extension_file.write_text(extensions + "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    _openssl("req", "-new", *_new_key_args(pair.key), "-out", str(request), "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-set_serial", f"0x{os.urandom(8).hex()}", "-days", "2", "-out", str(pair.cert),
             "-extfile", str(extension_file), cwd=directory)
    return pair


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    directory = tmp_path_factory.mktemp("tls-certs")
    ca = _make_ca(directory, "ca")
    server = _make_leaf(directory, "server", ca,
                        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client = _make_leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    other_ca = _make_ca(directory, "other-ca")
    other_client = _make_leaf(directory, "other-client", other_ca, "extendedKeyUsage=clientAuth\n")
    stray_key = directory / "stray.key"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(stray_key),
             cwd=directory)
    not_pem = directory / "not-pem.txt"
    not_pem.write_text("this is not a certificate\n")
    return Certificates(ca, server, client, other_ca, other_client, stray_key, not_pem)


def client_context(certs: Certificates, client: KeyPair | None = None) -> ssl.SSLContext:
    """Trusts the test CA; presents ``client`` when given."""
    context = ssl.create_default_context(cafile=str(certs.ca.cert))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def grpc_credentials(certs: Certificates, client: KeyPair | None = None,
                     trust: Path | None = None) -> grpc.ChannelCredentials:
    """TLS credentials for grpcio: trusts ``trust`` (default the test CA); presents ``client`` when given."""
    root = (trust or certs.ca.cert).read_bytes()
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.ssl_channel_credentials(root_certificates=root, private_key=client.key.read_bytes(),
                                        certificate_chain=client.cert.read_bytes())


def server_flags(certs: Certificates, mutual: bool = False) -> tuple[str, ...]:
    flags = ("--tls-cert-file", str(certs.server.cert), "--tls-key-file", str(certs.server.key))
    return flags + (("--tls-client-ca-file", str(certs.ca.cert)) if mutual else ())


# --------------------------------------------------------------------------
# Instances


def _start(name: str, e2e_dir: Path, binary: Path, extra_args: tuple[str, ...],
           context: ssl.SSLContext) -> Sextant:
    workdir = e2e_dir / f"sextant-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    instance = Sextant(name, workdir, binary, extra_args=extra_args, ssl_context=context)
    try:
        instance.start()
    except SextantError as err:
        pytest.fail(str(err), pytrace=False)
    return instance


@pytest.fixture(scope="module")
def tls_sextant(e2e_dir, sextant_bin, certs):
    instance = _start("tls", e2e_dir, sextant_bin, server_flags(certs), client_context(certs))
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def mtls_sextant(e2e_dir, sextant_bin, certs):
    instance = _start("mtls", e2e_dir, sextant_bin, server_flags(certs, mutual=True),
                      client_context(certs, certs.client))
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def token_sextant(e2e_dir, sextant_bin, certs):
    tokens = e2e_dir / "tls-tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    (tokens / "ingest").write_text(INGEST_TOKEN + "\n")
    (tokens / "query").write_text(QUERY_TOKEN + "\n")
    flags = server_flags(certs) + ("--ingest-token-file", str(tokens / "ingest"),
                                   "--query-token-file", str(tokens / "query"))
    instance = _start("tls-tokens", e2e_dir, sextant_bin, flags, client_context(certs))
    yield instance
    instance.stop()


# --------------------------------------------------------------------------
# Requests


def zipkin_span(service: str) -> tuple[str, bytes]:
    """A one-span Zipkin v2 JSON batch; returns (trace id, body)."""
    trace_id = os.urandom(16).hex()
    span = {
        "traceId": trace_id, "id": os.urandom(8).hex(), "name": "get /tls", "kind": "SERVER",
        "timestamp": int(time.time() * 1e6) - 5000, "duration": 1200,
        "localEndpoint": {"serviceName": service}, "tags": {"http.status_code": "200"},
    }
    return trace_id, json.dumps([span]).encode()


def post_zipkin(instance: Sextant, body: bytes, context: ssl.SSLContext | None = None,
                headers: dict | None = None):
    return http_request("POST", f"{instance.zipkin_url}/api/v2/spans", body=body,
                        headers={"Content-Type": "application/json", **(headers or {})},
                        ssl_context=context or instance.ssl_context)


def otlp_trace() -> tuple[str, bytes]:
    """One OTLP call (CLIENT and SERVER span) as ExportTraceServiceRequest bytes; returns (trace id, body)."""
    call = Call(client="tls-frontend", server="tls-backend", namespace="tls")
    return call.trace_id.hex(), call.to_proto().SerializeToString()


def wait_for_trace(instance: Sextant, trace_id: str, spans: int, timeout_s: float = 15.0) -> list:
    """The Zipkin API's spans of ``trace_id`` once it has ``spans`` of them (the last answer otherwise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = http_request("GET", f"{instance.zipkin_url}/api/v2/trace/{trace_id}",
                                ssl_context=instance.ssl_context)
        found = response.json() if response.status == 200 else []
        if len(found) >= spans or time.monotonic() >= deadline:
            return found
        time.sleep(0.3)


def refused(url: str, context: ssl.SSLContext | None) -> str | None:
    """None when a GET to ``url`` gets any HTTP answer, else what went wrong."""
    try:
        http_request("GET", url, ssl_context=context, timeout=10)
    except (OSError, http.client.HTTPException) as err:
        return repr(err)
    return None


def http_ports(instance: Sextant) -> dict[str, str]:
    """A GET URL (without scheme) on each HTTP listener."""
    return {
        "api": f"127.0.0.1:{instance.http_port}/healthz",
        "zipkin": f"127.0.0.1:{instance.zipkin_port}/health",
        "otlp-http": f"127.0.0.1:{instance.otlp_http_port}/v1/traces",
    }


# --------------------------------------------------------------------------
# TLS


def test_https_query_api_zipkin_and_otlp_http(tls_sextant):
    s = tls_sextant
    trace_id, body = zipkin_span("tls-zipkin")
    response = post_zipkin(s, body)
    assert response.status == 202, response.describe()
    spans = wait_for_trace(s, trace_id, 1)
    assert [span["localEndpoint"]["serviceName"] for span in spans] == ["tls-zipkin"], spans
    for path in ("/readyz", "/api/v1/graph?window=5m", "/metrics"):
        response = s.get(path)
        assert response.status == 200, response.describe()
    otlp_id, otlp_body = otlp_trace()
    response = http_request("POST", f"{s.otlp_http_url}/v1/traces", body=otlp_body,
                            headers={"Content-Type": "application/x-protobuf"}, ssl_context=s.ssl_context)
    assert response.status == 200, response.describe()
    assert len(wait_for_trace(s, otlp_id, 2)) == 2


def test_plain_clients_fail(tls_sextant):
    s = tls_sextant
    answered = {name: url for name, url in http_ports(s).items() if refused(f"http://{url}", None) is None}
    assert not answered, f"plain HTTP got an HTTP answer from a TLS listener: {answered}"
    result = unary(s.grpc_target, TRACE_EXPORT, otlp_trace()[1], timeout_s=5)
    assert result.code == grpc.StatusCode.UNAVAILABLE, result.describe()
    assert s.running()


def test_untrusted_server_certificate_is_rejected(tls_sextant, certs):
    s = tls_sextant
    system_trust = ssl.create_default_context()
    for name, url in http_ports(s).items():
        error = refused(f"https://{url}", system_trust)
        assert error is not None and "CERTIFICATE_VERIFY_FAILED" in error, (name, error)
    result = unary(s.grpc_target, TRACE_EXPORT, otlp_trace()[1], timeout_s=5,
                   credentials=grpc_credentials(certs, trust=certs.other_ca.cert))
    assert result.code == grpc.StatusCode.UNAVAILABLE, result.describe()


def test_grpc_otlp_export_over_tls(tls_sextant, certs):
    s = tls_sextant
    trace_id, body = otlp_trace()
    result = unary(s.grpc_target, TRACE_EXPORT, body, credentials=grpc_credentials(certs))
    assert result.code == grpc.StatusCode.OK, result.describe()
    spans = wait_for_trace(s, trace_id, 2)
    assert sorted(span["localEndpoint"]["serviceName"] for span in spans) == ["tls-backend", "tls-frontend"], spans
    trace = s.get(f"/api/v1/traces/{trace_id}")
    assert trace.status == 200, trace.describe()


# --------------------------------------------------------------------------
# mTLS


def test_mtls_refuses_clients_without_certificate(mtls_sextant, certs):
    s = mtls_sextant
    no_certificate = client_context(certs)
    answered = {name: url for name, url in http_ports(s).items() if refused(f"https://{url}", no_certificate) is None}
    assert not answered, f"a client without certificate got an HTTP answer: {answered}"
    result = unary(s.grpc_target, TRACE_EXPORT, otlp_trace()[1], timeout_s=5, credentials=grpc_credentials(certs))
    assert result.code == grpc.StatusCode.UNAVAILABLE, result.describe()
    assert s.running()


def test_mtls_refuses_client_certificates_of_another_ca(mtls_sextant, certs):
    s = mtls_sextant
    stranger = client_context(certs, certs.other_client)
    answered = {name: url for name, url in http_ports(s).items() if refused(f"https://{url}", stranger) is None}
    assert not answered, f"a client certificate from another CA got an HTTP answer: {answered}"
    result = unary(s.grpc_target, TRACE_EXPORT, otlp_trace()[1], timeout_s=5,
                   credentials=grpc_credentials(certs, certs.other_client))
    assert result.code == grpc.StatusCode.UNAVAILABLE, result.describe()


def test_mtls_accepts_client_certificates_of_the_ca(mtls_sextant, certs):
    s = mtls_sextant
    trace_id, body = zipkin_span("mtls-zipkin")
    response = post_zipkin(s, body)
    assert response.status == 202, response.describe()
    assert len(wait_for_trace(s, trace_id, 1)) == 1
    otlp_id, otlp_body = otlp_trace()
    result = unary(s.grpc_target, TRACE_EXPORT, otlp_body, credentials=grpc_credentials(certs, certs.client))
    assert result.code == grpc.StatusCode.OK, result.describe()
    assert len(wait_for_trace(s, otlp_id, 2)) == 2
    response = http_request("POST", f"{s.otlp_http_url}/v1/traces", body=otlp_trace()[1],
                            headers={"Content-Type": "application/x-protobuf"}, ssl_context=s.ssl_context)
    assert response.status == 200, response.describe()


def test_envoy_sidecars_send_zipkin_and_als_over_mtls(mtls_sextant, certs, e2e_dir):
    """The mesh's sidecars reach the mTLS instance through UpstreamTlsContexts; every call is counted."""
    s = mtls_sextant
    upstream_tls = {
        "sni": "localhost",
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": str(certs.client.cert)},
                                  "private_key": {"filename": str(certs.client.key)}}],
            "validation_context": {
                "trusted_ca": {"filename": str(certs.ca.cert)},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "localhost"}}],
            },
        },
    }
    with Mesh(zipkin_port=s.zipkin_port, als_ports=(s.grpc_port,), file_logs=False, collector_tls=upstream_tls,
              workdir=e2e_dir / "mesh-mtls") as mesh:
        traffic = mesh.drive(MESH_REQUESTS)
        counts = mesh.counts()
        truth = mesh.ground_truth(traffic, counts)
        graph, settled = wait_until_settled(
            s.graph, quiet_s=SETTLE_QUIET_S, timeout_s=SETTLE_TIMEOUT_S,
            not_before=traffic.finished_at + TELEMETRY_FLUSH_S)
    assert (UNKNOWN, "productpage-v1") in truth, format_edges(truth)
    mesh_edges = {key: counts for key, counts in edge_counts(graph).items() if key[1] in mesh.workloads}
    assert mesh_edges == truth, (f"settled={settled}\nexpected:\n{format_edges(truth)}\n"
                                 f"sextant:\n{format_edges(mesh_edges)}")
    sources = {key: sorted(edge.get("sources") or []) for key, edge in edges_by_workload(graph).items()
               if key in truth}
    assert all(value == ["als", "spans"] for value in sources.values()), sources


# --------------------------------------------------------------------------
# TLS and bearer tokens


def test_tls_and_tokens_compose(token_sextant, certs):
    s = token_sextant
    response = s.get("/api/v1/graph")
    assert response.status == 401, response.describe()
    response = http_request("GET", f"{s.base_url}/api/v1/graph", headers={"Authorization": f"Bearer {QUERY_TOKEN}"},
                            ssl_context=s.ssl_context)
    assert response.status == 200, response.describe()
    _, body = zipkin_span("tls-token")
    assert post_zipkin(s, body).status == 401
    response = post_zipkin(s, body, headers={"Authorization": f"Bearer {INGEST_TOKEN}"})
    assert response.status == 202, response.describe()
    credentials = grpc_credentials(certs)
    result = unary(s.grpc_target, TRACE_EXPORT, otlp_trace()[1], credentials=credentials)
    assert result.code == grpc.StatusCode.UNAUTHENTICATED, result.describe()
    result = unary(s.grpc_target, TRACE_EXPORT, otlp_trace()[1], credentials=credentials,
                   metadata=(("authorization", f"Bearer {INGEST_TOKEN}"),))
    assert result.code == grpc.StatusCode.OK, result.describe()


# --------------------------------------------------------------------------
# Bad files stop the start


BAD_FILES = {
    # case -> (flags as (flag, certificate name) pairs, words the message must contain)
    "missing certificate": ((("--tls-cert-file", "missing"), ("--tls-key-file", "server.key")),
                            ("missing.pem", "no such file")),
    "certificate not PEM": ((("--tls-cert-file", "not_pem"), ("--tls-key-file", "server.key")),
                            ("not-pem.txt", "no PEM certificate")),
    "key of another certificate": ((("--tls-cert-file", "server.crt"), ("--tls-key-file", "stray_key")),
                                   ("stray.key", "not the private key")),
    "key not PEM": ((("--tls-cert-file", "server.crt"), ("--tls-key-file", "not_pem")),
                    ("not-pem.txt", "private key")),
    "client CA not PEM": ((("--tls-cert-file", "server.crt"), ("--tls-key-file", "server.key"),
                           ("--tls-client-ca-file", "not_pem")), ("not-pem.txt", "no PEM certificate")),
    "certificate without key": ((("--tls-cert-file", "server.crt"),), ("--tls-key-file",)),
}


def _path(certs: Certificates, name: str) -> str:
    return {
        "missing": str(certs.ca.cert.parent / "missing.pem"),
        "server.crt": str(certs.server.cert),
        "server.key": str(certs.server.key),
        "stray_key": str(certs.stray_key),
        "not_pem": str(certs.not_pem),
    }[name]


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_certificate_files_stop_the_start(case, certs, sextant_bin, tmp_path):
    flags, words = BAD_FILES[case]
    http_port, zipkin_port, grpc_port, otlp_port, statsd_port = free_ports(5)
    argv = [str(sextant_bin), "serve", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1",
            "--http-port", str(http_port), "--zipkin-port", str(zipkin_port), "--grpc-port", str(grpc_port),
            "--otlp-http-port", str(otlp_port), "--statsd-port", str(statsd_port)]
    for flag, name in flags:
        argv += [flag, _path(certs, name)]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    message = result.stderr.decode(errors="replace") + result.stdout.decode(errors="replace")
    assert result.returncode > 0, f"{case}: exit {result.returncode} (a signal is a crash)\n{message}"
    missing = [word for word in words if word not in message]
    assert not missing, f"{case}: the message lacks {missing}:\n{message}"
