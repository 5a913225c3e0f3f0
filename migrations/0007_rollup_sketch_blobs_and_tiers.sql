-- Rollups, second form. Three changes, for queries that read few rows whatever the window:
-- * A row's latency sketch is one blob in the row (LatencySketch.encodedCounts: per non-empty
--   sketch bucket, the index's distance from the previous one and the count, zigzag varints),
--   merged by Sextant's SQL functions sextant_sketch_merge / sextant_sketch_sum.
-- * Keyed (tier, bucket, series_id) as before: the rows of one tier over a range of buckets are one
--   range of the key, read in one pass without a seek per series; retention deletes by its prefix.
-- * Three more tiers: 5 minutes (300), 10 minutes (600) and 1 day (86400), beside 1 minute (60)
--   and 1 hour (3600).
-- TCP connections roll up here too, as series of protocol 2 (tcp): count is connections,
-- request_bytes the bytes received from the client, response_bytes the bytes sent to it; their
-- d/q/r histogram columns stay 0.

CREATE TABLE call_rollups_v2 (
    tier INTEGER NOT NULL,                  -- bucket width in seconds: 60, 300, 600, 3600 or 86400
    bucket INTEGER NOT NULL,                -- bucket start, Unix seconds
    series_id INTEGER NOT NULL REFERENCES call_series (id),
    count INTEGER NOT NULL DEFAULT 0,
    duration_us INTEGER NOT NULL DEFAULT 0,
    request_bytes INTEGER NOT NULL DEFAULT 0,
    response_bytes INTEGER NOT NULL DEFAULT 0,
    sources INTEGER NOT NULL DEFAULT 0,
    latency BLOB NOT NULL DEFAULT x'',      -- before the histogram columns: queries read it, not them
    d0 INTEGER NOT NULL DEFAULT 0,
    d1 INTEGER NOT NULL DEFAULT 0,
    d2 INTEGER NOT NULL DEFAULT 0,
    d3 INTEGER NOT NULL DEFAULT 0,
    d4 INTEGER NOT NULL DEFAULT 0,
    d5 INTEGER NOT NULL DEFAULT 0,
    d6 INTEGER NOT NULL DEFAULT 0,
    d7 INTEGER NOT NULL DEFAULT 0,
    d8 INTEGER NOT NULL DEFAULT 0,
    d9 INTEGER NOT NULL DEFAULT 0,
    d10 INTEGER NOT NULL DEFAULT 0,
    d11 INTEGER NOT NULL DEFAULT 0,
    d12 INTEGER NOT NULL DEFAULT 0,
    d13 INTEGER NOT NULL DEFAULT 0,
    d14 INTEGER NOT NULL DEFAULT 0,
    d15 INTEGER NOT NULL DEFAULT 0,
    d16 INTEGER NOT NULL DEFAULT 0,
    d17 INTEGER NOT NULL DEFAULT 0,
    d18 INTEGER NOT NULL DEFAULT 0,
    q0 INTEGER NOT NULL DEFAULT 0,
    q1 INTEGER NOT NULL DEFAULT 0,
    q2 INTEGER NOT NULL DEFAULT 0,
    q3 INTEGER NOT NULL DEFAULT 0,
    q4 INTEGER NOT NULL DEFAULT 0,
    q5 INTEGER NOT NULL DEFAULT 0,
    q6 INTEGER NOT NULL DEFAULT 0,
    q7 INTEGER NOT NULL DEFAULT 0,
    q8 INTEGER NOT NULL DEFAULT 0,
    q9 INTEGER NOT NULL DEFAULT 0,
    q10 INTEGER NOT NULL DEFAULT 0,
    q11 INTEGER NOT NULL DEFAULT 0,
    q12 INTEGER NOT NULL DEFAULT 0,
    q13 INTEGER NOT NULL DEFAULT 0,
    q14 INTEGER NOT NULL DEFAULT 0,
    q15 INTEGER NOT NULL DEFAULT 0,
    q16 INTEGER NOT NULL DEFAULT 0,
    q17 INTEGER NOT NULL DEFAULT 0,
    q18 INTEGER NOT NULL DEFAULT 0,
    r0 INTEGER NOT NULL DEFAULT 0,
    r1 INTEGER NOT NULL DEFAULT 0,
    r2 INTEGER NOT NULL DEFAULT 0,
    r3 INTEGER NOT NULL DEFAULT 0,
    r4 INTEGER NOT NULL DEFAULT 0,
    r5 INTEGER NOT NULL DEFAULT 0,
    r6 INTEGER NOT NULL DEFAULT 0,
    r7 INTEGER NOT NULL DEFAULT 0,
    r8 INTEGER NOT NULL DEFAULT 0,
    r9 INTEGER NOT NULL DEFAULT 0,
    r10 INTEGER NOT NULL DEFAULT 0,
    r11 INTEGER NOT NULL DEFAULT 0,
    r12 INTEGER NOT NULL DEFAULT 0,
    r13 INTEGER NOT NULL DEFAULT 0,
    r14 INTEGER NOT NULL DEFAULT 0,
    r15 INTEGER NOT NULL DEFAULT 0,
    r16 INTEGER NOT NULL DEFAULT 0,
    r17 INTEGER NOT NULL DEFAULT 0,
    r18 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tier, bucket, series_id)
) WITHOUT ROWID;

-- The minute and hour rows as they were, each with its sketch gathered into the blob.
INSERT INTO call_rollups_v2 (tier, series_id, bucket, count, duration_us, request_bytes, response_bytes, sources,
    d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15, d16, d17, d18, q0, q1, q2,
    q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, r0, r1, r2, r3, r4, r5,
    r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17, r18,
    latency)
SELECT r.tier, r.series_id, r.bucket, r.count, r.duration_us, r.request_bytes, r.response_bytes, r.sources,
    r.d0, r.d1, r.d2, r.d3, r.d4, r.d5, r.d6, r.d7, r.d8, r.d9, r.d10, r.d11, r.d12, r.d13, r.d14,
    r.d15, r.d16, r.d17, r.d18, r.q0, r.q1, r.q2, r.q3, r.q4, r.q5, r.q6, r.q7, r.q8, r.q9, r.q10,
    r.q11, r.q12, r.q13, r.q14, r.q15, r.q16, r.q17, r.q18, r.r0, r.r1, r.r2, r.r3, r.r4, r.r5,
    r.r6, r.r7, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.r16, r.r17, r.r18,
    coalesce((SELECT sextant_sketch_build(l.latency_bucket, l.count) FROM call_rollup_latency l
        WHERE l.tier = r.tier AND l.bucket = r.bucket AND l.series_id = r.series_id), x'')
FROM call_rollups r;

-- 5- and 10-minute rows from the minute rows, day rows from the hour rows.
INSERT INTO call_rollups_v2 (tier, series_id, bucket, count, duration_us, request_bytes, response_bytes, sources,
    d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15, d16, d17, d18, q0, q1, q2,
    q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, r0, r1, r2, r3, r4, r5,
    r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17, r18,
    latency)
SELECT 300, series_id, bucket - bucket % 300, sum(count), sum(duration_us), sum(request_bytes), sum(response_bytes),
    sextant_bit_or(sources),
    sum(d0), sum(d1), sum(d2), sum(d3), sum(d4), sum(d5), sum(d6), sum(d7), sum(d8), sum(d9),
    sum(d10), sum(d11), sum(d12), sum(d13), sum(d14), sum(d15), sum(d16), sum(d17), sum(d18),
    sum(q0), sum(q1), sum(q2), sum(q3), sum(q4), sum(q5), sum(q6), sum(q7), sum(q8), sum(q9),
    sum(q10), sum(q11), sum(q12), sum(q13), sum(q14), sum(q15), sum(q16), sum(q17), sum(q18),
    sum(r0), sum(r1), sum(r2), sum(r3), sum(r4), sum(r5), sum(r6), sum(r7), sum(r8), sum(r9),
    sum(r10), sum(r11), sum(r12), sum(r13), sum(r14), sum(r15), sum(r16), sum(r17), sum(r18),
    sextant_sketch_sum(latency)
FROM call_rollups_v2 WHERE tier = 60 GROUP BY series_id, bucket - bucket % 300;

INSERT INTO call_rollups_v2 (tier, series_id, bucket, count, duration_us, request_bytes, response_bytes, sources,
    d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15, d16, d17, d18, q0, q1, q2,
    q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, r0, r1, r2, r3, r4, r5,
    r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17, r18,
    latency)
SELECT 600, series_id, bucket - bucket % 600, sum(count), sum(duration_us), sum(request_bytes), sum(response_bytes),
    sextant_bit_or(sources),
    sum(d0), sum(d1), sum(d2), sum(d3), sum(d4), sum(d5), sum(d6), sum(d7), sum(d8), sum(d9),
    sum(d10), sum(d11), sum(d12), sum(d13), sum(d14), sum(d15), sum(d16), sum(d17), sum(d18),
    sum(q0), sum(q1), sum(q2), sum(q3), sum(q4), sum(q5), sum(q6), sum(q7), sum(q8), sum(q9),
    sum(q10), sum(q11), sum(q12), sum(q13), sum(q14), sum(q15), sum(q16), sum(q17), sum(q18),
    sum(r0), sum(r1), sum(r2), sum(r3), sum(r4), sum(r5), sum(r6), sum(r7), sum(r8), sum(r9),
    sum(r10), sum(r11), sum(r12), sum(r13), sum(r14), sum(r15), sum(r16), sum(r17), sum(r18),
    sextant_sketch_sum(latency)
FROM call_rollups_v2 WHERE tier = 60 GROUP BY series_id, bucket - bucket % 600;

INSERT INTO call_rollups_v2 (tier, series_id, bucket, count, duration_us, request_bytes, response_bytes, sources,
    d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15, d16, d17, d18, q0, q1, q2,
    q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, r0, r1, r2, r3, r4, r5,
    r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17, r18,
    latency)
SELECT 86400, series_id, bucket - bucket % 86400, sum(count), sum(duration_us), sum(request_bytes),
    sum(response_bytes), sextant_bit_or(sources),
    sum(d0), sum(d1), sum(d2), sum(d3), sum(d4), sum(d5), sum(d6), sum(d7), sum(d8), sum(d9),
    sum(d10), sum(d11), sum(d12), sum(d13), sum(d14), sum(d15), sum(d16), sum(d17), sum(d18),
    sum(q0), sum(q1), sum(q2), sum(q3), sum(q4), sum(q5), sum(q6), sum(q7), sum(q8), sum(q9),
    sum(q10), sum(q11), sum(q12), sum(q13), sum(q14), sum(q15), sum(q16), sum(q17), sum(q18),
    sum(r0), sum(r1), sum(r2), sum(r3), sum(r4), sum(r5), sum(r6), sum(r7), sum(r8), sum(r9),
    sum(r10), sum(r11), sum(r12), sum(r13), sum(r14), sum(r15), sum(r16), sum(r17), sum(r18),
    sextant_sketch_sum(latency)
FROM call_rollups_v2 WHERE tier = 3600 GROUP BY series_id, bucket - bucket % 86400;

-- TCP connections still held raw, rolled up into every tier.
INSERT OR IGNORE INTO call_series (reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status,
    response_flags, security_policy, paired)
SELECT DISTINCT reporter, proxy_id, coalesce(peer_id, 0), service_id, 2, 0, -1, response_flags, security_policy, paired
FROM tcp_connections;

WITH tiers (tier) AS (VALUES (60), (300), (600), (3600), (86400)),
per_index AS (
    SELECT t.tier, s.id AS series_id, c.ts_us / 1000000 - (c.ts_us / 1000000) % t.tier AS bucket, c.latency_bucket,
        count(*) AS n, sum(c.duration_us) AS d, sum(c.received_bytes) AS q, sum(c.sent_bytes) AS r,
        sextant_bit_or(c.sources) AS src
    FROM tcp_connections c CROSS JOIN tiers t
    JOIN call_series s ON s.reporter = c.reporter AND s.proxy_id = c.proxy_id AND s.peer_id = coalesce(c.peer_id, 0)
        AND s.service_id = c.service_id AND s.protocol = 2 AND s.response_code = 0 AND s.grpc_status = -1
        AND s.response_flags = c.response_flags AND s.security_policy = c.security_policy AND s.paired = c.paired
    GROUP BY t.tier, s.id, bucket, c.latency_bucket
)
INSERT INTO call_rollups_v2 (tier, series_id, bucket, count, duration_us, request_bytes, response_bytes, sources, latency)
SELECT tier, series_id, bucket, sum(n), sum(d), sum(q), sum(r), sextant_bit_or(src), sextant_sketch_build(latency_bucket, n)
FROM per_index GROUP BY tier, series_id, bucket;

DROP TABLE call_rollup_latency;
DROP TABLE call_rollups;
ALTER TABLE call_rollups_v2 RENAME TO call_rollups;
