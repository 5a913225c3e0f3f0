"""Smoke test of sextant-loadgen (README, "Ingest (sextant-loadgen)"): a --quick run of every
channel against a debug sextant that the generator starts and stops itself. Figures are not
checked (speed lives in the README's benchmark output); only that records were acknowledged
and nothing failed."""

from __future__ import annotations

import re
import subprocess

import pytest

from mesh import REPO_ROOT
from sextant import sextant_binary


def test_loadgen_quick_run_acknowledges_records():
    loadgen = REPO_ROOT / ".build" / "debug" / "sextant-loadgen"
    binary = sextant_binary()
    if not loadgen.exists() or not binary.exists():
        pytest.skip(f"build first: {loadgen} / {binary}")
    # A low rate, so a debug build on a shared CI machine keeps up.
    done = subprocess.run(
        [str(loadgen), "--quick", "--sextant-bin", str(binary), "--connections", "4", "--start-rate", "300"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    match = re.search(r"quick: acked (\d+) records, (\d+) errors", done.stdout)
    assert match, done.stdout[-3000:]
    assert int(match.group(1)) > 0, done.stdout
    assert int(match.group(2)) == 0, done.stdout + done.stderr[-3000:]


def test_loadgen_floor_answers_every_http_channel():
    """--modes floor starts the generator's own HTTP floor server (a NIO server that reads bodies and
    answers as Sextant would) and steps each HTTP channel against it: every row has a knee."""
    loadgen = REPO_ROOT / ".build" / "debug" / "sextant-loadgen"
    if not loadgen.exists():
        pytest.skip(f"build first: {loadgen}")
    done = subprocess.run(
        [str(loadgen), "--quick", "--modes", "floor", "--channels", "zipkin,accesslog,otlp-http",
         "--connections", "4", "--start-rate", "300"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "POST" in line]
    assert len(rows) == 3, done.stdout
    for row in rows:
        knee = row.split("|")[2].strip()
        assert re.fullmatch(r"(≥ )?[\d,]+", knee), row
