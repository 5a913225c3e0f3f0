-- Rollups of calls, built as calls are stored (in the same transaction), per minute (tier 60)
-- and per hour (tier 3600). A call moves between series when pairing names its other side; the
-- rollups move with it, so they always equal the raw calls they summarise.

-- One row per distinct label set of stored calls: Istio's labels plus whether the other proxy's
-- report was found. peer_id 0 = unknown; grpc_status -1 = none.
CREATE TABLE call_series (
    id INTEGER PRIMARY KEY,
    reporter INTEGER NOT NULL,
    proxy_id INTEGER NOT NULL,
    peer_id INTEGER NOT NULL,
    service_id INTEGER NOT NULL,
    protocol INTEGER NOT NULL,
    response_code INTEGER NOT NULL,
    grpc_status INTEGER NOT NULL,
    response_flags TEXT NOT NULL,
    security_policy TEXT NOT NULL,
    paired INTEGER NOT NULL,
    UNIQUE (reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status, response_flags,
        security_policy, paired)
);

-- Totals per series and time bucket. d0..d18, q0..q18, r0..r18: calls whose duration (ms), request
-- bytes and response bytes fall at or below Envoy's default bucket bound i and above bound i-1
-- (not cumulative; the +Inf bucket is what the count leaves over).
CREATE TABLE call_rollups (
    tier INTEGER NOT NULL,
    bucket INTEGER NOT NULL,                -- bucket start, Unix seconds
    series_id INTEGER NOT NULL REFERENCES call_series (id),
    count INTEGER NOT NULL DEFAULT 0,
    duration_us INTEGER NOT NULL DEFAULT 0,
    request_bytes INTEGER NOT NULL DEFAULT 0,
    response_bytes INTEGER NOT NULL DEFAULT 0,
    sources INTEGER NOT NULL DEFAULT 0,
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

-- The latency sketch per series and bucket: calls per LatencySketch index (1% relative error).
CREATE TABLE call_rollup_latency (
    tier INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    latency_bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (tier, bucket, series_id, latency_bucket)
) WITHOUT ROWID;
