"""Overload: twice the measured capacity for a minute, under a memory limit.

1. ``sextant serve --memory-limit`` (``SEXTANT_OVERLOAD_MEMORY``, default
   192M) starts on a fresh data directory. On a machine of two cores or more
   it is held to one core and the test's senders to another, so that what
   the load exceeds is the server and not the Python senders (which take
   about 30,000 spans/s at most, less than Sextant on two cores).
2. Capacity: ``CAPACITY_SENDERS`` threads post Envoy-like Zipkin batches (the
   crash test's ``Records``) back to back for ``CAPACITY_S`` seconds; capacity
   is the spans acknowledged per second.
3. Overload: for ``SEXTANT_OVERLOAD_S`` seconds (default 60) batches are
   offered open loop at twice that rate, each by one of up to
   ``MAX_IN_FLIGHT`` (400) connections, as many sidecars as send together (with
   fewer, a server that keeps up with them only answers later); a refused batch
   is not re-sent. Meanwhile ``/proc/<pid>/status`` is read every 50 ms: ``RssAnon``, the
   memory the process holds, which ``--memory-limit`` bounds, and ``VmRSS``,
   which adds the database pages SQLite maps for reads (the kernel's cache,
   reclaimable; with ``mmap_size`` each reader maps them again).
4. Recovery: once the load stops, valid batches must be accepted again within
   ``RECOVERY_S`` seconds, and then one after the other.

The test wants shedding answers (429 or 503, each with ``Retry-After``) and
no other failure, the peak ``RssAnon`` under the limit, every acknowledged span in
the database (``PRAGMA integrity_check`` ok), and the refusals counted in
``sextant_ingest_refused_total``. It prints its figures.
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from sextant import Sextant, SextantError, parse_exposition
from test_crash import SIDECARS, Acked, Records, check_database

OVERLOAD_S = float(os.environ.get("SEXTANT_OVERLOAD_S", "60"))
MEMORY_LIMIT = os.environ.get("SEXTANT_OVERLOAD_MEMORY", "192M")
CAPACITY_S = 6.0
CAPACITY_SENDERS = 4
SPANS_PER_BATCH = 100
MAX_IN_FLIGHT = 400
RECOVERY_S = 10.0
REQUEST_TIMEOUT_S = 60.0


def limit_bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: list = field(default_factory=list)
    accepted_batches: int = 0
    shed: dict = field(default_factory=dict)  # status -> count
    shed_without_retry_after: int = 0
    problems: list = field(default_factory=list)
    latencies: list = field(default_factory=list)


class Poster:
    """Posts Zipkin batches on one keep-alive connection per thread."""

    def __init__(self, sextant: Sextant, records: Records, tally: Tally) -> None:
        self.sextant, self.records, self.tally = sextant, records, tally
        self.local = threading.local()
        self.next = 0

    def connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "conn", None) is None:
            self.local.conn = http.client.HTTPConnection("127.0.0.1", self.sextant.zipkin_port,
                                                         timeout=REQUEST_TIMEOUT_S)
        return self.local.conn

    def post(self) -> int:
        """One batch; returns the status (0 when the request failed)."""
        self.next += 1
        body, ids = self.records.zipkin_batch(SIDECARS[self.next % len(SIDECARS)], SPANS_PER_BATCH)
        started = time.monotonic()
        try:
            conn = self.connection()
            conn.request("POST", "/api/v2/spans", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read()[:300].decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as err:
            self.local.conn = None
            with self.tally.lock:
                self.tally.problems.append(f"request failed: {err!r}")
            return 0
        now = time.monotonic()
        with self.tally.lock:
            if response.status == 202:
                self.tally.acked.extend((i, now) for i in ids)
                self.tally.accepted_batches += 1
                self.tally.latencies.append(now - started)
            elif response.status in (429, 503):
                self.tally.shed[response.status] = self.tally.shed.get(response.status, 0) + 1
                if not response.getheader("Retry-After"):
                    self.tally.shed_without_retry_after += 1
            else:
                self.tally.problems.append(f"{response.status}: {text}")
        return response.status


class RSSWatch(threading.Thread):
    """The peaks of ``RssAnon`` and ``VmRSS`` of a process, in bytes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak = {"RssAnon": 0, "VmRSS": 0}

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as status:
                    for line in status:
                        key = line.split(":")[0]
                        if key in self.peak:
                            self.peak[key] = max(self.peak[key], int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.05)


def pin(pid: int, cpus: set[int]) -> None:
    """Holds every thread of a process to ``cpus`` (threads it starts later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass  # the thread has ended


def refused(sextant: Sextant) -> dict[str, float]:
    response = sextant.get("/metrics")
    return {s.labels.get("reason", ""): s.value for s in parse_exposition(response.text)
            if s.name == "sextant_ingest_refused_total" and s.labels.get("channel") == "zipkin"}


def test_twice_the_capacity_sheds_stays_under_the_memory_limit_and_recovers(tmp_path):
    limit = limit_bytes(MEMORY_LIMIT)
    sextant = Sextant("overload", tmp_path, extra_args=("--memory-limit", MEMORY_LIMIT))
    try:
        sextant.start()
    except SextantError as err:
        pytest.fail(str(err), pytrace=False)
    own_cpus = os.sched_getaffinity(0)
    if len(own_cpus) >= 2:
        server_cpu, sender_cpu = sorted(own_cpus)[:2]
        pin(sextant.process.pid, {server_cpu})
        os.sched_setaffinity(0, {sender_cpu})
    try:
        records = Records(random.Random(secrets.randbits(32)))
        watch = RSSWatch(sextant.process.pid)
        watch.start()

        # Capacity, closed loop.
        measured = Tally()
        poster = Poster(sextant, records, measured)
        deadline = time.monotonic() + CAPACITY_S

        def closed_loop() -> None:
            while time.monotonic() < deadline:
                poster.post()

        threads = [threading.Thread(target=closed_loop) for _ in range(CAPACITY_SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not measured.problems, measured.problems[:5]
        capacity = len(measured.acked) / CAPACITY_S
        assert capacity > 0, "nothing was accepted while measuring"

        # Twice that, open loop.
        tally = Tally()
        overload = Poster(sextant, records, tally)
        rate = 2 * capacity / SPANS_PER_BATCH  # batches per second
        started = time.monotonic()
        offered = 0
        with ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT) as pool:
            while (now := time.monotonic()) < started + OVERLOAD_S:
                due = int((now - started) * rate) + 1
                while offered < due:
                    pool.submit(overload.post)
                    offered += 1
                time.sleep(0.005)
        load_ended = time.monotonic()

        # Recovery: accepted again, promptly.
        after = Tally()
        recovery = Poster(sextant, records, after)
        first_ok = None
        while time.monotonic() < load_ended + RECOVERY_S:
            if recovery.post() == 202:
                first_ok = time.monotonic() - load_ended
                break
            time.sleep(0.1)
        assert first_ok is not None, f"no batch accepted within {RECOVERY_S} s after the load: {after.shed}"
        steady = [recovery.post() for _ in range(20)]
        watch.stop.set()
        watch.join()

        counted = refused(sextant)
        acked = Acked()
        acked.add("zipkin", measured.acked + tally.acked + after.acked, lambda _: "overload")
        check = check_database(sextant.data_dir / "sextant.db", acked, read_only=True)
        shed = sum(tally.shed.values())
        lat = sorted(tally.latencies)
        print(f"\ncapacity {capacity:.0f} spans/s ({CAPACITY_SENDERS} closed-loop senders, {SPANS_PER_BATCH} per batch); "
              f"offered {offered} batches in {OVERLOAD_S:.0f} s ({rate * SPANS_PER_BATCH:.0f} spans/s): "
              f"{tally.accepted_batches} accepted ({len(tally.acked) / OVERLOAD_S:.0f} spans/s), shed {tally.shed}, "
              f"{len(tally.problems)} failures; accepted p50 {lat[len(lat) // 2] if lat else 0:.2f} s; "
              f"peak RssAnon {watch.peak['RssAnon'] >> 20} MiB of {limit >> 20} MiB (VmRSS {watch.peak['VmRSS'] >> 20} MiB); first accepted {first_ok:.2f} s after the load; "
              f"refused counters {counted}; {len(acked.spans)} acknowledged spans checked in {check.seconds:.1f} s")

        assert not tally.problems, tally.problems[:10]
        assert shed > 0, f"nothing was shed at twice the capacity: {tally.accepted_batches} of {offered} accepted"
        assert tally.shed_without_retry_after == 0, f"{tally.shed_without_retry_after} refusals without Retry-After"
        assert tally.accepted_batches > 0, "nothing was accepted under load"
        assert watch.peak["RssAnon"] < limit, (
            f"peak RssAnon {watch.peak['RssAnon'] >> 20} MiB passed the limit {limit >> 20} MiB")
        assert steady == [202] * 20, f"after recovery: {steady}"
        assert sum(counted.values()) >= shed, f"refusals counted {counted}, answered {tally.shed}"
        assert check.ok, (f"{len(check.missing_spans)} of {len(acked.spans)} acknowledged spans missing "
                          f"({check.missing_spans[:10]}), integrity {check.integrity}")
    finally:
        os.sched_setaffinity(0, own_cpus)
        sextant.stop()
