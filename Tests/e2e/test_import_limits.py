"""End-to-end: ``sextant import`` applies the record rules ``serve`` applies to an upload.

A copy of productpage's recorded access log gets one line with a negative duration and one a year
and a day long; the import stores every other line, names the two it rejected and exits 1, and
``/api/v1/graph`` of a server started on the same data directory counts only the stored calls.
"""

from __future__ import annotations

import json

from sextant import REPO_ROOT, Sextant

FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy"


def test_import_rejects_what_serve_would(tmp_path):
    topology = json.loads((FIXTURES / "topology.json").read_text())
    node_id = next(w["node_id"] for w in topology["workloads"] if w["workload"] == "productpage-v1")
    lines = (FIXTURES / "access-log" / "productpage-v1.jsonl").read_text().splitlines()
    negative = json.loads(lines[0]) | {"duration": -5}
    too_long = json.loads(lines[1]) | {"duration": 366 * 86_400 * 1000 + 86_400 * 1000}
    path = tmp_path / "productpage.jsonl"
    path.write_text("\n".join([json.dumps(negative), json.dumps(too_long), *lines[2:]]) + "\n")

    sextant = Sextant("import-limits", tmp_path)
    result = sextant.import_files(node_id, [path])
    out = result.stdout.decode()
    assert result.returncode == 1, out + result.stderr.decode()
    assert f"{len(lines) - 2} calls and 0 TCP connections stored, 2 lines rejected" in out, out
    assert "line 1" in out and "negative" in out, out
    assert "longer than a year" in out, out

    with sextant:
        graph = sextant.graph(window="100000d")
        assert sum(e["requests"] for e in graph["edges"]) == len(lines) - 2
