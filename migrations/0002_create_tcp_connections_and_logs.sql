-- One row per TCP connection per reporting proxy (Envoy TCP access logs).
CREATE TABLE tcp_connections (
    id INTEGER PRIMARY KEY,
    conn_key INTEGER NOT NULL UNIQUE,
    ts_us INTEGER NOT NULL,
    reporter INTEGER NOT NULL,              -- 0 source (outbound), 1 destination (inbound)
    proxy_id INTEGER NOT NULL REFERENCES workloads (id),
    peer_id INTEGER REFERENCES workloads (id),
    service_id INTEGER NOT NULL REFERENCES services (id),
    duration_us INTEGER NOT NULL,
    latency_bucket INTEGER NOT NULL,
    received_bytes INTEGER NOT NULL,        -- from the downstream peer
    sent_bytes INTEGER NOT NULL,            -- to the downstream peer
    response_flags TEXT NOT NULL,
    security_policy TEXT NOT NULL,
    local_addr TEXT,
    remote_addr TEXT,
    sources INTEGER NOT NULL,
    paired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tcp_connections_by_time ON tcp_connections (ts_us);
CREATE INDEX tcp_connections_by_local ON tcp_connections (local_addr) WHERE local_addr IS NOT NULL;
CREATE INDEX tcp_connections_by_remote ON tcp_connections (remote_addr) WHERE remote_addr IS NOT NULL;

-- Application log records (OpenTelemetry logs that are not Envoy access logs).
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    service TEXT NOT NULL,
    severity_number INTEGER NOT NULL,
    severity_text TEXT NOT NULL,
    body TEXT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    attributes TEXT NOT NULL                -- JSON object
);
CREATE INDEX logs_by_service_time ON logs (service, ts_us);
CREATE INDEX logs_by_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;
