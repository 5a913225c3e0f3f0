-- Calls are merged (same call from another channel, or resent) and paired with the other proxy's
-- report through an index in memory of the calls written lately (CallIndex.swift), rebuilt from
-- the newest rows at start. A call then writes its row at the end of the table and one entry in
-- the time index, and no entry in an index on a random key (call key, request id, trace id): each
-- of those touched its own leaf page per call.
--
-- SQLite cannot drop a UNIQUE constraint in place: the table is copied without it.
CREATE TABLE requests_v2 (
    id INTEGER PRIMARY KEY,
    call_key INTEGER NOT NULL,              -- CallKey: the same call as one proxy saw it, whichever channel
    ts_us INTEGER NOT NULL,
    reporter INTEGER NOT NULL,              -- 0 source (outbound), 1 destination (inbound)
    proxy_id INTEGER NOT NULL REFERENCES workloads (id),
    peer_id INTEGER REFERENCES workloads (id), -- the other side; NULL = unknown
    service_id INTEGER NOT NULL REFERENCES services (id),
    protocol INTEGER NOT NULL,              -- 0 http, 1 grpc, 2 tcp
    response_code INTEGER NOT NULL,
    grpc_status INTEGER,
    response_flags TEXT NOT NULL,
    security_policy TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    latency_bucket INTEGER NOT NULL,        -- LatencySketch index of duration_us
    request_bytes INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    request_id TEXT,
    trace_id TEXT,
    span_id TEXT,
    parent_span_id TEXT,
    local_addr TEXT,
    remote_addr TEXT,
    sources INTEGER NOT NULL,               -- Channel bits
    paired INTEGER NOT NULL DEFAULT 0       -- 1 once the other proxy's report of this call is found
);
INSERT INTO requests_v2 SELECT id, call_key, ts_us, reporter, proxy_id, peer_id, service_id, protocol,
    response_code, grpc_status, response_flags, security_policy, duration_us, latency_bucket, request_bytes,
    response_bytes, request_id, trace_id, span_id, parent_span_id, local_addr, remote_addr, sources, paired
    FROM requests;
DROP TABLE requests;
ALTER TABLE requests_v2 RENAME TO requests;
CREATE INDEX requests_by_time ON requests (ts_us);
