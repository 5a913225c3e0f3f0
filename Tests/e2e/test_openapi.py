"""Schemathesis against a running sextant: no request may end in a server error.

Sextant's own API is checked with openapi/sextant-v1.yaml on the HTTP port, the Zipkin v2 API
with OpenZipkin's zipkin2-api.yaml (from ../shared/specs, or $ZIPKIN_API_SPEC) on the Zipkin
port. Both instances first receive the captured Zipkin spans so that queries find data.

Environment:
  SCHEMATHESIS_MAX_EXAMPLES  examples per operation (default 50)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mesh import REPO_ROOT
from sextant import Sextant, http_request

SEXTANT_SPEC = REPO_ROOT / "openapi" / "sextant-v1.yaml"
ZIPKIN_SPEC = Path(os.environ.get("ZIPKIN_API_SPEC", REPO_ROOT.parent / "shared" / "specs" / "zipkin2-api.yaml"))
ZIPKIN_FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy" / "zipkin"
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50")
RUN_TIMEOUT_S = 900


def _schemathesis() -> str:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if not found:
        pytest.fail("schemathesis is not installed: run scripts/setup-test-env.sh")
    return found


@pytest.fixture(scope="module")
def sextant_with_spans(tmp_path_factory):
    with Sextant("openapi", tmp_path_factory.mktemp("openapi")) as instance:
        for batch in sorted(ZIPKIN_FIXTURES.glob("*.json")):
            response = http_request("POST", f"http://127.0.0.1:{instance.zipkin_port}/api/v2/spans",
                                    body=batch.read_bytes(), headers={"Content-Type": "application/json"})
            assert response.status == 202, response.describe()
        yield instance


# Sextant's uploads are newline-delimited JSON and protobuf bodies, which schemathesis does not
# serialize on its own: these hooks send the generated strings and bytes as they are.
HOOKS = """
import schemathesis


def _raw(ctx, value):
    if isinstance(value, bytes):
        return value
    return str(value).encode()


schemathesis.serializer("application/x-ndjson")(_raw)
schemathesis.serializer("application/x-protobuf")(_raw)
"""


def _run(spec: Path, url: str, instance: Sextant) -> None:
    hooks_dir = instance.workdir / "hooks"
    hooks_dir.mkdir(exist_ok=True)
    (hooks_dir / "sextant_schemathesis_hooks.py").write_text(HOOKS)
    env = dict(os.environ, SCHEMATHESIS_HOOKS="sextant_schemathesis_hooks",
               PYTHONPATH=os.pathsep.join(filter(None, [str(hooks_dir), os.environ.get("PYTHONPATH")])))
    argv = [
        _schemathesis(), "run", str(spec),
        "--url", url,
        "--checks", "not_a_server_error",
        "--max-examples", MAX_EXAMPLES,
        "--seed", "1",
        "--no-color",
    ]
    # Run in the instance's folder: schemathesis leaves a .schemathesis/ cache in its working directory.
    result = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env,
                            cwd=instance.workdir)
    assert instance.running(), f"sextant exited during schemathesis:\n{instance.report()}"
    assert result.returncode == 0, (
        f"{' '.join(argv)} -> {result.returncode}\n{result.stdout[-8000:]}\n{result.stderr[-3000:]}\n"
        f"{instance.report()}")


def test_sextant_api_has_no_server_errors(sextant_with_spans):
    _run(SEXTANT_SPEC, sextant_with_spans.base_url, sextant_with_spans)


def test_zipkin_api_has_no_server_errors(sextant_with_spans):
    if not ZIPKIN_SPEC.exists():
        pytest.skip(f"{ZIPKIN_SPEC} not found (set ZIPKIN_API_SPEC)")
    _run(ZIPKIN_SPEC, f"http://127.0.0.1:{sextant_with_spans.zipkin_port}/api/v2", sextant_with_spans)
