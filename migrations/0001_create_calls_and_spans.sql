-- Dictionaries: identities and services are stored once and referenced by id. A workload is
-- (namespace, workload); what channels learn about it (app, version, cluster, ...) fills the
-- columns still unknown.
CREATE TABLE workloads (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    workload TEXT NOT NULL,
    app TEXT NOT NULL,
    version TEXT NOT NULL,
    canonical_service TEXT NOT NULL,
    canonical_revision TEXT NOT NULL,
    principal TEXT NOT NULL,
    cluster TEXT NOT NULL,
    UNIQUE (namespace, workload)
);

CREATE TABLE services (
    id INTEGER PRIMARY KEY,
    host TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    namespace TEXT NOT NULL
);

-- One row per call per reporting proxy. A call seen on several channels of the same proxy
-- (spans and access logs) is one row: call_key identifies it, sources ORs the channels.
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    call_key INTEGER NOT NULL UNIQUE,
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
CREATE INDEX requests_by_time ON requests (ts_us);
CREATE INDEX requests_by_request_id ON requests (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX requests_by_trace ON requests (trace_id) WHERE trace_id IS NOT NULL;

-- Which workload answers on an address, learned from inbound reports.
CREATE TABLE endpoints (
    address TEXT PRIMARY KEY,
    workload_id INTEGER NOT NULL REFERENCES workloads (id),
    last_seen_us INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE spans (
    id INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    kind INTEGER NOT NULL,
    name TEXT NOT NULL,
    service TEXT NOT NULL,
    remote_service TEXT,
    start_us INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    error INTEGER NOT NULL,
    shared INTEGER NOT NULL,
    local_endpoint TEXT,                    -- JSON
    remote_endpoint TEXT,                   -- JSON
    annotations TEXT,                       -- JSON array
    tags TEXT NOT NULL,                     -- JSON object
    UNIQUE (trace_id, span_id, kind, service)
);
CREATE INDEX spans_by_service_time ON spans (service, start_us);
