#!/usr/bin/env python3
"""Times Sextant's trace queries on a generated database of N spans.

Builds the schema from migrations/ (all of them, or all but 0005 with --without-0005), fills
`spans` with synthetic traces (6 spans each, 20 services, 7 days, log-normal durations, 1% errors)
and runs the SQL that Sources/SextantStore/Queries/SextantDatabase+Traces.swift runs: trace by id,
and a service + minDuration search walked newest first until `limit` distinct traces are found.

    scripts/bench-traces.py --spans 5000000 --db bench/sextant.db
    sextant serve --data-dir bench --zipkin-port 9411 &   # the file must be named sextant.db
    scripts/bench-traces.py --reuse --db bench/sextant.db --zipkin-url http://127.0.0.1:9411
"""
import argparse
import glob
import json
import math
import os
import random
import sqlite3
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATIONS = os.path.join(HERE, "..", "migrations")
SERVICES = [f"svc{i:02d}.default" for i in range(20)]
DAY_US = 86_400_000_000
END_US = 1_800_000_000_000_000


def build(path, spans, with_0005):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    # A bulk load: no journal, a large cache, and the secondary indexes built after the rows.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -1000000")
    for file in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql"))):
        if not with_0005 and os.path.basename(file).startswith("0005"):
            continue
        db.executescript(open(file).read())
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spans' AND sql IS NOT NULL").fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    rng = random.Random(7)

    def rows():
        for t in range(spans // 6):
            trace = f"{rng.getrandbits(128):032x}"
            start = END_US - rng.randrange(7 * DAY_US)
            parent = None
            for depth in range(6):
                service = SERVICES[rng.randrange(len(SERVICES))]
                span_id = f"{rng.getrandbits(64):016x}"
                duration = max(1, int(math.exp(rng.gauss(math.log(10_000), 1.2))))
                error = 1 if rng.random() < 0.01 else 0
                tags = {"http.method": "GET", "http.status_code": "500" if error else "200",
                        "node_id": f"sidecar~10.0.0.{depth}~{service}~default.svc.cluster.local"}
                if error:
                    tags["error"] = "true"
                yield (trace, span_id, parent, 1 + depth % 2, f"op{rng.randrange(30)}", service,
                       SERVICES[rng.randrange(len(SERVICES))], start + depth * 100, duration, error, 0,
                       json.dumps({"serviceName": service}), None, None, json.dumps(tags, sort_keys=True))
                parent = span_id

    t0 = time.time()
    db.executemany(
        "INSERT INTO spans (trace_id, span_id, parent_id, kind, name, service, remote_service, start_us,"
        " duration_us, error, shared, local_endpoint, remote_endpoint, annotations, tags)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    db.commit()
    for _, sql in indexes:
        db.execute(sql)
    db.execute("ANALYZE")
    db.execute("PRAGMA journal_mode = WAL")
    # Recorded as GRDB records them, so `sextant serve --data-dir` opens the file as migrated.
    db.execute("CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
    db.executemany("INSERT INTO grdb_migrations VALUES (?)",
                   [(os.path.basename(f)[:-4],) for f in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql")))
                    if with_0005 or not os.path.basename(f).startswith("0005")])
    db.commit()
    print(f"built {spans} spans in {time.time() - t0:.0f}s, {os.path.getsize(path) / 1e9:.2f} GB")
    db.close()


def timed(db, runs, fn):
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def search(db, service, min_us, end_us, lookback_us, limit):
    found, seen = [], set()
    where = "start_us >= ? AND start_us <= ? AND duration_us >= ?"
    arguments = [end_us - lookback_us, end_us, min_us]
    if service:
        where += " AND service = ?"
        arguments.append(service)
    rows = db.execute(f"SELECT trace_id FROM spans WHERE {where} ORDER BY start_us DESC", arguments)
    for (trace,) in rows:
        if trace not in seen:
            seen.add(trace)
            found.append(trace)
            if len(found) == limit:
                break
    return found


def bench(path, runs):
    db = sqlite3.connect(path)
    ids = [r[0] for r in db.execute("SELECT trace_id FROM spans ORDER BY random() LIMIT ?", (runs,))]
    print("plan, search:", db.execute(
        "EXPLAIN QUERY PLAN SELECT trace_id FROM spans WHERE start_us >= 0 AND start_us <= 1 AND service = 'a'"
        " AND duration_us >= 1 ORDER BY start_us DESC").fetchall())
    med, p90 = timed(db, runs, lambda i: db.execute(
        "SELECT trace_id, span_id, parent_id, kind, name, start_us, duration_us, local_endpoint, remote_endpoint,"
        " annotations, tags, error, shared FROM spans WHERE trace_id = ? ORDER BY start_us, id", (ids[i],)).fetchall())
    print(f"trace by id: median {med:.3f} ms, p90 {p90:.3f} ms")
    # 10 ms is about the median span, 1 s about 1 span in 4,000.
    for min_us in (10_000, 1_000_000):
        for lookback in (3_600_000_000, DAY_US):
            results = []
            med, p90 = timed(db, runs, lambda i: results.append(
                len(search(db, SERVICES[i % len(SERVICES)], min_us, END_US - (i % 24) * 3_600_000_000, lookback, 10))))
            print(f"service + minDuration={min_us}us, lookback {lookback // 3_600_000_000}h, limit 10:"
                  f" median {med:.2f} ms, p90 {p90:.2f} ms (traces found: median {statistics.median(results)})")
    results = []
    med, p90 = timed(db, runs, lambda i: results.append(
        len(search(db, None, 1_000_000, END_US - (i % 24) * 3_600_000_000, 3_600_000_000, 10))))
    print(f"any service + minDuration=1000000us, lookback 1h, limit 10: median {med:.2f} ms, p90 {p90:.2f} ms"
          f" (traces found: median {statistics.median(results)})")
    db.close()


def bench_http(path, zipkin_url, runs):
    """The same look-ups through a running `sextant serve` on the database (Zipkin port)."""
    import urllib.request
    db = sqlite3.connect(path)
    ids = [r[0] for r in db.execute("SELECT trace_id FROM spans ORDER BY random() LIMIT ?", (runs,))]
    db.close()

    def get(url):
        with urllib.request.urlopen(url, timeout=60) as response:
            assert response.status == 200, url
            return response.read()

    med, p90 = timed(None, runs, lambda i: get(f"{zipkin_url}/api/v2/trace/{ids[i]}"))
    print(f"HTTP GET /api/v2/trace/{{id}}: median {med:.2f} ms, p90 {p90:.2f} ms")
    for min_us in (10_000, 1_000_000):
        med, p90 = timed(None, runs, lambda i: get(
            f"{zipkin_url}/api/v2/traces?serviceName={SERVICES[i % len(SERVICES)]}&minDuration={min_us}"
            f"&endTs={(END_US - (i % 24) * 3_600_000_000) // 1000}&lookback=86400000&limit=10"))
        print(f"HTTP GET /api/v2/traces?serviceName&minDuration={min_us}&lookback=1d&limit=10 (spans of up to"
              f" 10 traces): median {med:.2f} ms, p90 {p90:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=5_000_000)
    parser.add_argument("--db", default="bench-traces.db")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--without-0005", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="benchmark an existing database")
    parser.add_argument("--zipkin-url", help="also time the look-ups through sextant serve at this Zipkin URL")
    args = parser.parse_args()
    if not args.reuse:
        build(args.db, args.spans, not args.without_0005)
    if args.zipkin_url:
        bench_http(args.db, args.zipkin_url.rstrip("/"), args.runs)
    else:
        bench(args.db, args.runs)
