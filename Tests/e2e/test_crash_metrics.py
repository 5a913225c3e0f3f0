"""Crash test for metrics: every remote-written sample sextant acknowledged survives a SIGKILL.

All rounds share one data directory. A round starts ``sextant serve``, checks that
every sample acknowledged before is read back (``/api/v1/query_range`` without a
step lists a series' stored samples), then runs two sender threads, each posting
remote-write requests of 50 series x one sample back to back on its own
connection, and kills sextant with SIGKILL 0.3-1.5 s after they started. One
round in the middle ends with SIGTERM instead, so that the shutdown writes the
pending samples into chunks and later rounds read chunks and appends together.

A sample counts as acknowledged once the 204 answer to its request was read; a
request cut off by the kill counts as nothing.

Environment:
  SEXTANT_CRASH_ROUNDS  kill/restart rounds (default 6 here)
  SEXTANT_CRASH_SEED    seed of the kill moments (default: random; printed)
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import threading
import time

from remote_write import snappy_block, write_request
from sextant import Sextant

ROUNDS = int(os.environ.get("SEXTANT_CRASH_ROUNDS", "6"))
SEED = int(os.environ.get("SEXTANT_CRASH_SEED") or random.SystemRandom().getrandbits(32))
SENDERS = 2
SERIES = 50


class Sender(threading.Thread):
    """Posts one sample per series per request; keeps what was acknowledged."""

    def __init__(self, sender: int, port: int, first_ms: int, acknowledged: dict) -> None:
        super().__init__(daemon=True)
        self.sender, self.port, self.next_ms, self.acknowledged = sender, port, first_ms, acknowledged
        self.stop = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        while not self.stop.is_set():
            ts = self.next_ms
            self.next_ms += 1
            body = snappy_block(write_request([
                ({"__name__": "crash_metric", "sender": str(self.sender), "series": str(j)}, [(float(ts % 100_000 + j), ts)])
                for j in range(SERIES)
            ]))
            try:
                connection.request("POST", "/api/v1/write", body=body, headers={
                    "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                    "X-Prometheus-Remote-Write-Version": "0.1.0"})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return
            if response.status == 204:
                for j in range(SERIES):
                    self.acknowledged[(self.sender, j, ts)] = float(ts % 100_000 + j)
            elif response.status not in (429, 503):
                raise AssertionError(f"remote write answered {response.status}")


def stored(sextant: Sextant, start_ms: int, end_ms: int) -> dict:
    found = {}
    for sender in range(SENDERS):
        for series in sextant.query_range(f'crash_metric{{sender="{sender}"}}', start_ms / 1000, end_ms / 1000):
            j = int(series["metric"]["series"])
            for t, value in series["values"]:
                found[(sender, j, round(t * 1000))] = float(value)
    return found


def test_every_acknowledged_sample_survives_kills(tmp_path):
    rng = random.Random(SEED)
    print(f"SEXTANT_CRASH_SEED={SEED}")
    acknowledged: dict = {}
    start_ms = int(time.time() * 1000) - 60_000
    next_ms = [start_ms] * SENDERS
    sextant = Sextant("crash-metrics", tmp_path)
    try:
        for round_ in range(ROUNDS + 1):
            sextant.start()
            found = stored(sextant, start_ms, start_ms + 1_000_000)
            missing = [key for key, value in acknowledged.items() if found.get(key) != value]
            assert not missing, f"round {round_}: {len(missing)} acknowledged samples missing or changed, e.g. {missing[:5]}"
            if round_ == ROUNDS:
                break
            senders = [Sender(s, sextant.http_port, next_ms[s], acknowledged) for s in range(SENDERS)]
            for sender in senders:
                sender.start()
            time.sleep(rng.uniform(0.3, 1.5))
            if round_ == ROUNDS // 2:
                sextant.process.send_signal(signal.SIGTERM)
            else:
                sextant.process.send_signal(signal.SIGKILL)
            sextant.process.wait(timeout=30)
            for sender in senders:
                sender.stop.set()
                sender.join(timeout=30)
            for s, sender in enumerate(senders):
                next_ms[s] = sender.next_ms
        assert len(acknowledged) >= ROUNDS * SERIES, "the senders had almost nothing acknowledged"
    finally:
        sextant.stop()
