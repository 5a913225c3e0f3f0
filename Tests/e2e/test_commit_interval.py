"""``sextant serve --commit-interval`` (README, "How it works" → Storage): the least time from one
ingest commit's start to the next one's while spans keep coming. A request that finds the writer
idle since longer is committed at once; spans that come right after a commit wait for the interval
to pass since that commit began, while another sender (an open connection that has sent before)
may still send, and are answered only once committed. Access-log lines cost a commit little of its
own and go at once; so does whatever the only sender left sends. Values outside 0 to 1 s are
refused at start with a message naming the flag.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time

from mesh import REPO_ROOT
from sextant import Sextant, sextant_binary

FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy"


def _commits(sextant: Sextant) -> float:
    commits = sextant.self_metric("sextant_ingest_commits_total")
    assert commits is not None, "no sextant_ingest_commits_total on /metrics"
    return commits


def _post_spans(connection: http.client.HTTPConnection, body: bytes) -> float:
    """Posts a Zipkin batch on a kept-alive connection; returns the seconds until its 202."""
    start = time.monotonic()
    connection.request("POST", "/api/v2/spans", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    assert response.status == 202, f"{response.status} {answer[:500]!r}"
    return time.monotonic() - start


def test_spans_right_after_a_commit_wait_for_the_interval_while_another_sender_may_send(tmp_path):
    batches = sorted((FIXTURES / "zipkin").glob("batch-*.json"))[:3]
    workload = json.loads((FIXTURES / "topology.json").read_text())["workloads"][0]
    lines = (FIXTURES / "access-log" / f"{workload['workload']}.jsonl").read_bytes()
    with Sextant("commit-interval", tmp_path / "sextant", extra_args=("--commit-interval", "1s")) as sextant:
        before = _commits(sextant)
        first = http.client.HTTPConnection("127.0.0.1", sextant.zipkin_port, timeout=30)
        second = http.client.HTTPConnection("127.0.0.1", sextant.zipkin_port, timeout=30)
        try:
            # The writer has been idle since start: the first batch is committed at once.
            waited = _post_spans(first, batches[0].read_bytes())
            assert waited < 0.5, f"the first batch waited {waited:.3f} s"
            # The second comes right after that commit began, from a second connection while the
            # first stays open and may send more: it waits until 1 s after that commit began.
            waited = _post_spans(second, batches[1].read_bytes())
            assert waited >= 0.5, f"the second batch was answered {waited:.3f} s after it was sent, before the interval"
            assert _commits(sextant) - before == 2, "each batch is its own commit"
            # Access-log lines right after a commit go at once.
            start = time.monotonic()
            response = sextant.post_access_log(workload["node_id"], lines)
            waited = time.monotonic() - start
            assert response.status == 200, response.describe()
            assert response.json()["accepted"] > 0, response.describe()
            assert waited < 0.5, f"access-log lines right after a commit waited {waited:.3f} s"
            # With the first connection gone, the second is the only sender: nothing else can come
            # before it is answered, so its spans go at once too.
            first.close()
            time.sleep(0.2)
            waited = _post_spans(second, batches[2].read_bytes())
            assert waited < 0.5, f"the only sender's batch waited {waited:.3f} s"
        finally:
            first.close()
            second.close()
        assert _commits(sextant) - before == 4, "each upload is its own commit"


def test_a_commit_interval_outside_0_to_1s_is_refused_at_start(tmp_path):
    for value in ("2s", "1.5", "soon"):
        result = subprocess.run(
            [str(sextant_binary()), "serve", "--data-dir", str(tmp_path / "data"), "--commit-interval", value],
            capture_output=True, text=True, timeout=60)
        assert result.returncode != 0, f"--commit-interval {value} was taken"
        assert "--commit-interval" in result.stderr, result.stderr
