"""Disk full and read-only database: ingest answers 503 with a clear message, queries keep working,
nothing acknowledged is lost, and ingest recovers once it can write again.

* ``--max-db-size``: a small cap (SQLite's ``max_page_count``) fills up under
  Zipkin batches; then 503 "database is full" (counted as
  ``sextant_ingest_refused_total{reason="storage_full"}``), the API and the
  Zipkin query API still answer, and a restart with a larger cap takes data
  again.
* A real full disk: the data directory on a small tmpfs, filled by another
  file; once that file is deleted ingest goes on without a restart.

The tmpfs case needs to mount (root); it is skipped, saying why, where that
is not allowed. Every case ends with every acknowledged span in the database
and ``PRAGMA integrity_check`` ok. A read-only database is covered by
``IngestWriterStorageTests`` (Swift): Linux refuses to remount a file system
read-only while sextant holds the database open for writing.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from sextant import Sextant, SextantError, http_request, parse_exposition
from test_crash import SIDECARS, Acked, Records, check_database

SPANS_PER_BATCH = 50
FILL_TIMEOUT_S = 60.0
RECOVERY_S = 15.0


class Feeder:
    """Posts Zipkin batches, keeping the ids of every acknowledged span."""

    def __init__(self, sextant: Sextant) -> None:
        self.sextant = sextant
        self.records = Records(random.Random(secrets.randbits(32)))
        self.acked = Acked()
        self.traces: list[str] = []
        self.count = 0

    def post(self):
        self.count += 1
        body, ids = self.records.zipkin_batch(SIDECARS[self.count % len(SIDECARS)], SPANS_PER_BATCH)
        response = http_request("POST", f"http://127.0.0.1:{self.sextant.zipkin_port}/api/v2/spans", body=body,
                                headers={"Content-Type": "application/json"}, timeout=60)
        if response.status == 202:
            self.acked.add("zipkin", ((i, 0.0) for i in ids), lambda _: "acked")
            self.traces.append(ids[0][0])
        return response

    def until_refused(self):
        """Posts until a batch is refused; returns that answer."""
        deadline = time.monotonic() + FILL_TIMEOUT_S
        while time.monotonic() < deadline:
            response = self.post()
            if response.status != 202:
                return response
        pytest.fail(f"still accepting after {FILL_TIMEOUT_S:.0f} s and {self.count} batches")

    def until_refused_in_a_row(self, count: int):
        """Posts until ``count`` batches in a row are refused; returns the last answer."""
        deadline = time.monotonic() + FILL_TIMEOUT_S
        refusals = 0
        while time.monotonic() < deadline:
            response = self.post()
            refusals = refusals + 1 if response.status != 202 else 0
            if refusals == count:
                return response
        pytest.fail(f"not {count} refusals in a row within {FILL_TIMEOUT_S:.0f} s and {self.count} batches")

    def until_accepted(self) -> float:
        """Posts until a batch is accepted; returns how long that took."""
        started = time.monotonic()
        while time.monotonic() < started + RECOVERY_S:
            response = self.post()
            if response.status == 202:
                return time.monotonic() - started
            time.sleep(0.2)
        pytest.fail(f"ingest did not recover within {RECOVERY_S:.0f} s: {response.describe()}")

    def check(self) -> None:
        check = check_database(self.sextant.data_dir / "sextant.db", self.acked, read_only=True)
        assert check.ok, (f"{len(check.missing_spans)} of {len(self.acked.spans)} acknowledged spans missing, "
                          f"integrity {check.integrity}")


def refused(sextant: Sextant, reason: str) -> float:
    response = sextant.get("/metrics")
    assert response.status == 200, response.describe()
    return sum(s.value for s in parse_exposition(response.text)
               if s.name == "sextant_ingest_refused_total" and s.labels.get("reason") == reason)


def assert_queries_work(sextant: Sextant, feeder: Feeder) -> None:
    trace = http_request("GET", f"http://127.0.0.1:{sextant.zipkin_port}/api/v2/trace/{feeder.traces[-1]}")
    assert trace.status == 200 and len(trace.json()) > 0, trace.describe()
    graph = sextant.get("/api/v1/graph", {"graphType": "workload", "window": "15m"})
    assert graph.status == 200, graph.describe()
    assert sextant.get("/metrics").status == 200


def assert_unavailable(response, *words: str) -> None:
    assert response.status == 503, f"expected 503: {response.describe()}"
    assert response.headers.get("Retry-After"), f"no Retry-After: {response.headers}"
    for word in words:
        assert word in response.text, f"the answer does not say '{word}': {response.describe()}"


def test_max_db_size_fills_then_refuses_and_queries_still_work(tmp_path):
    sextant = Sextant("max-db-size", tmp_path, extra_args=("--max-db-size", "2M"))
    try:
        sextant.start()
    except SextantError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        feeder = Feeder(sextant)
        response = feeder.until_refused()
        assert_unavailable(response, "database is full", "--max-db-size")
        assert feeder.acked.spans, "the cap was reached before anything was stored"
        assert refused(sextant, "storage_full") >= 1
        # Blocks are small: near the cap a batch may still fit in the free space of a page after
        # another did not. Once nothing fits, every batch is refused.
        assert_unavailable(feeder.until_refused_in_a_row(5), "database is full")
        assert_queries_work(sextant, feeder)
        feeder.check()
    finally:
        sextant.stop()
    # A larger cap on the same data directory takes data again.
    sextant.extra_args = ("--max-db-size", "64M")
    sextant.start()
    try:
        feeder.sextant = sextant
        feeder.until_accepted()
        feeder.check()
    finally:
        sextant.stop()


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_disk_refuses_then_recovers_when_space_returns(tmp_path):
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "16m")
    sextant = Sextant("disk-full", disk)
    try:
        sextant.start()
        feeder = Feeder(sextant)
        for _ in range(5):
            assert feeder.post().status == 202
        # Take what is left of the disk. Unbuffered: nothing is left to flush (and fail) at close.
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f:
            try:
                while f.write(b"\0" * (64 << 10)):
                    pass
            except OSError:
                pass
        response = feeder.until_refused()
        assert_unavailable(response, "database is full")
        assert refused(sextant, "storage_full") >= 1
        assert_queries_work(sextant, feeder)
        filler.unlink()
        took = feeder.until_accepted()
        print(f"\nfull disk: refused after {feeder.count} batches; accepted again {took:.2f} s after space returned")
        for _ in range(5):
            assert feeder.post().status == 202
        feeder.check()
    finally:
        sextant.stop()
        umount(disk)
