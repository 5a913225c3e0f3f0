"""The binary an operator copies to a host (README, "One binary"): ``scripts/release.sh`` links the
Swift runtime and Foundation in and strips it; ``ldd`` may list only the system libraries Sextant
means to use; copied alone into an empty folder, it serves, migrates a new database, takes
Envoy's access logs and answers the graph and the page.

The test builds with ``--configuration debug`` (the same link as a release build, quicker); CI has
built it before the end-to-end tests run, so here it only links again if anything changed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from mesh import REPO_ROOT
from sextant import Sextant

FIXTURES = REPO_ROOT / "Tests" / "Fixtures" / "envoy"

# The system libraries Sextant links on purpose: SQLite, zlib, zstd, snappy, RE2 (and the C++
# runtime it needs), libc and libm, the dynamic loader.
ALLOWED = {
    "linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libgcc_s.so.1", "libstdc++.so.6",
    "libsqlite3.so.0", "libz.so.1", "libzstd.so.1", "libsnappy.so.1", "libre2.so.9", "libre2.so.10",
    "libre2.so.11",
}


def _libraries(binary: Path) -> set[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        name = line.split()[0]
        names.add(Path(name).name)
    return names


def test_release_binary_needs_only_system_libraries_and_runs_alone(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run(["scripts/release.sh", "--configuration", "debug", "--output", str(dist)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    built = dist / "sextant"
    assert built.exists()

    libraries = _libraries(built)
    unexpected = sorted(libraries - ALLOWED)
    assert not unexpected, f"the release binary needs libraries it should carry or not use: {unexpected}"
    assert not any(re.match(r"lib(swift|Foundation|dispatch|BlocksRuntime|icu|curl|ssl|crypto)", n)
                   for n in libraries)
    # Stripped: no symbol table left.
    symbols = subprocess.run(["nm", str(built)], capture_output=True, text=True)
    assert "no symbols" in symbols.stderr

    # Alone in an empty folder: nothing beside it (no resource bundles, no toolchain on its path).
    alone = tmp_path / "host" / "sextant"
    alone.parent.mkdir()
    shutil.copy2(built, alone)
    assert sorted(p.name for p in alone.parent.iterdir()) == ["sextant"]
    topology = json.loads((FIXTURES / "topology.json").read_text())
    node_ids = {w["workload"]: w["node_id"] for w in topology["workloads"]}
    with Sextant("release", tmp_path / "run", binary=alone) as sextant:
        for workload, node_id in sorted(node_ids.items()):
            body = (FIXTURES / "access-log" / f"{workload}.jsonl").read_bytes()
            response = sextant.post_access_log(node_id, body)
            assert response.status == 200, response.describe()
        graph = sextant.graph(window="100000d")
        edges = {(e["source"], e["target"]): e["requests"] for e in graph["edges"]}
        assert edges[("unknown", "workload:default:productpage-v1")] == 50
        page = sextant.get("/")
        assert page.status == 200 and "sextant.js" in page.text
