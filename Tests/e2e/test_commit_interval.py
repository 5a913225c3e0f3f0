"""``sextant serve --commit-interval`` (README, "How it works" → Storage): the least time from one
ingest commit's start to the next one's while records keep coming. A request that finds the writer
idle since longer is committed at once; one that comes right after a commit waits for the interval
to pass since that commit began, and is answered only once committed. Values outside 0 to 1 s
are refused at start with a message naming the flag.
"""

from __future__ import annotations

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


def test_a_request_right_after_a_commit_waits_for_the_interval_and_is_then_stored(tmp_path):
    topology = json.loads((FIXTURES / "topology.json").read_text())
    workloads = topology["workloads"][:2]
    with Sextant("commit-interval", tmp_path / "sextant", extra_args=("--commit-interval", "1s")) as sextant:
        before = _commits(sextant)
        # The writer has been idle since start: the first upload is committed at once.
        first = (FIXTURES / "access-log" / f"{workloads[0]['workload']}.jsonl").read_bytes()
        assert sextant.post_access_log(workloads[0]["node_id"], first).status == 200
        # The second comes right after that commit began: it waits until 1 s after it.
        second = (FIXTURES / "access-log" / f"{workloads[1]['workload']}.jsonl").read_bytes()
        start = time.monotonic()
        response = sextant.post_access_log(workloads[1]["node_id"], second)
        waited = time.monotonic() - start
        assert response.status == 200, response.describe()
        assert waited >= 0.5, f"the second upload was answered {waited:.3f} s after it was sent, before the interval"
        assert _commits(sextant) - before == 2, "each upload is its own commit"
        accepted = response.json()["accepted"]
        assert accepted > 0, response.describe()


def test_a_commit_interval_outside_0_to_1s_is_refused_at_start(tmp_path):
    for value in ("2s", "1.5", "soon"):
        result = subprocess.run(
            [str(sextant_binary()), "serve", "--data-dir", str(tmp_path / "data"), "--commit-interval", value],
            capture_output=True, text=True, timeout=60)
        assert result.returncode != 0, f"--commit-interval {value} was taken"
        assert "--commit-interval" in result.stderr, result.stderr
