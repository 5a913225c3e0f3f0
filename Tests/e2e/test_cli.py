"""The mesh from a terminal (README, "From a terminal"): ``sextant graph``, ``top``, ``signals``,
``diff`` and ``traces`` against a running server (``--server``, with its query token) and against
its data directory directly, which must print the same; colour only on a terminal; and
``sextant import`` showing its progress on a terminal and a summary at the end.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from mesh import REPO_ROOT
from sextant import Sextant, http_request

FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy"
WINDOW = "3000d"  # the fixtures were captured in 2026


def _run(sextant: Sextant, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(sextant.binary), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, f"sextant {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_terminal_commands_read_a_server_and_its_data_directory_alike(tmp_path):
    token = tmp_path / "query-token"
    token.write_text("terminal-secret\n")
    topology = json.loads((FIXTURES / "topology.json").read_text())
    with Sextant("cli", tmp_path / "sextant", extra_args=("--query-token-file", str(token))) as sextant:
        for workload in topology["workloads"]:
            body = (FIXTURES / "access-log" / f"{workload['workload']}.jsonl").read_bytes()
            assert sextant.post_access_log(workload["node_id"], body).status == 200
        spans = (FIXTURES / "zipkin" / "batch-001.json").read_bytes()
        response = http_request("POST", f"{sextant.zipkin_url}/api/v2/spans", body=spans,
                                headers={"Content-Type": "application/json"})
        assert response.status == 202, response.describe()

        end = str(int(time.time()))
        server = ("--server", sextant.base_url, "--token-file", str(token), "--window", WINDOW, "--end", end)
        local = ("--data-dir", str(sextant.data_dir), "--window", WINDOW, "--end", end)
        commands = [
            ("graph",), ("graph", "--type", "app"), ("graph", "--format", "dot"), ("graph", "--format", "mermaid"),
            ("top", "--by", "p99", "--limit", "3"), ("signals", "ratings-v1"), ("signals", "--by", "service"),
            ("diff", "--min-requests", "5"), ("traces", "--limit", "5"), ("traces", "--errors"),
        ]
        outputs = {}
        for command in commands:
            from_server = _run(sextant, *command, *server).stdout
            from_directory = _run(sextant, *command, *local).stdout
            assert from_server == from_directory, f"{command}: server and data directory differ"
            assert "\x1b[" not in from_server, f"{command}: colour without a terminal"
            outputs[command] = from_server

        table = outputs[("graph",)].splitlines()
        assert table[0].split() == ["SOURCE", "TARGET", "PROTO", "RPS", "REQUESTS", "ERRORS", "P50", "MS", "P99", "MS",
                                    "SEEN", "IN"]
        rows = {(line.split()[0], line.split()[1]): line.split() for line in table[1:]}
        graph = json.loads(_run(sextant, "graph", "--format", "json", *server).stdout)
        assert len(rows) == len(graph["edges"])
        ratings = rows[("default/reviews-v3", "default/ratings-v1")]
        edge = next(e for e in graph["edges"]
                    if e["source"] == "workload:default:reviews-v3" and e["target"] == "workload:default:ratings-v1")
        assert int(ratings[4]) == edge["requests"]
        assert ratings[5] == f"{edge['errorRate'] * 100:.1f}%"
        assert outputs[("graph", "--format", "dot")].count(" -> ") == len(graph["edges"])
        assert outputs[("signals", "ratings-v1")].splitlines()[1].split()[0] == "ratings-v1"
        assert "new errors" in outputs[("diff", "--min-requests", "5")]
        traces = outputs[("traces", "--limit", "5")].splitlines()
        assert traces[0].startswith("TRACE") and len(traces) > 1

        # Without the token the server refuses, and the command says so.
        refused = _run(sextant, "graph", "--server", sextant.base_url, check=False)
        assert refused.returncode != 0 and "401" in refused.stderr
        bad = _run(sextant, "top", *local[:2], "--window", "soon", check=False)
        assert bad.returncode != 0 and "window 'soon'" in bad.stderr

        # On a terminal (script(1), from Debian's essential bsdutils, gives one), failing edges are coloured.
        tty = subprocess.run(["script", "-qc", " ".join([str(sextant.binary), "graph", *local]), "/dev/null"],
                             capture_output=True, text=True, timeout=120)
        assert "\x1b[31m" in tty.stdout


def test_import_shows_progress_on_a_terminal_and_a_summary(tmp_path):
    topology = json.loads((FIXTURES / "topology.json").read_text())
    node = next(w["node_id"] for w in topology["workloads"] if w["workload"] == "productpage-v1")
    log = tmp_path / "big.jsonl"
    lines = (FIXTURES / "access-log" / "productpage-v1.jsonl").read_bytes()
    log.write_bytes(lines * 40)
    binary = Sextant("unused", tmp_path / "unused").binary
    command = f"{binary} import --data-dir {tmp_path / 'data'} --log-level error --batch-lines 50 --node '{node}' {log}"
    result = subprocess.run(["script", "-qc", command, "/dev/null"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout
    assert "lines/s" in result.stdout and " left" in result.stdout, result.stdout[-2000:]
    total = sum(1 for line in lines.splitlines() if line.strip()) * 40
    assert f"imported 1 file(s), {total} lines" in result.stdout
