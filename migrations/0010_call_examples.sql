-- Example traces per edge and minute, kept as calls are written, so that a graph links each edge
-- to its slowest traced call and its newest failed one without reading the window's raw calls.
-- An edge here is what a proxy reported: (reporter, proxy, peer, service, protocol), peer 0 for
-- unknown. TCP connections have no traces and no examples.
CREATE TABLE call_examples (
    bucket INTEGER NOT NULL,                -- minute start, Unix seconds
    reporter INTEGER NOT NULL,
    proxy_id INTEGER NOT NULL,
    peer_id INTEGER NOT NULL,
    service_id INTEGER NOT NULL,
    protocol INTEGER NOT NULL,
    slow_trace TEXT,                        -- the slowest call's trace id, and its duration
    slow_us INTEGER NOT NULL DEFAULT -1,
    failed_trace TEXT,                      -- the newest failed call's trace id, start and duration
    failed_ts_us INTEGER NOT NULL DEFAULT -1,
    failed_us INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, reporter, proxy_id, peer_id, service_id, protocol)
) WITHOUT ROWID;

-- The examples of the calls stored so far (SQLite gives the bare columns of the row holding the
-- max()). A failed call then was one without a response, with a 4xx or 5xx, or gRPC with a
-- status other than OK.
INSERT INTO call_examples (bucket, reporter, proxy_id, peer_id, service_id, protocol, slow_trace, slow_us)
SELECT ts_us / 60000000 * 60, reporter, proxy_id, coalesce(peer_id, 0), service_id, protocol, trace_id, max(duration_us)
FROM requests WHERE trace_id IS NOT NULL AND protocol != 2 AND ts_us >= 0
GROUP BY ts_us / 60000000, reporter, proxy_id, coalesce(peer_id, 0), service_id, protocol;

INSERT INTO call_examples (bucket, reporter, proxy_id, peer_id, service_id, protocol, failed_trace, failed_us, failed_ts_us)
SELECT ts_us / 60000000 * 60, reporter, proxy_id, coalesce(peer_id, 0), service_id, protocol, trace_id, duration_us,
    max(ts_us)
FROM requests WHERE trace_id IS NOT NULL AND protocol != 2 AND ts_us >= 0
    AND (response_code = 0 OR response_code >= 400 OR (protocol = 1 AND coalesce(grpc_status, 0) != 0))
GROUP BY ts_us / 60000000, reporter, proxy_id, coalesce(peer_id, 0), service_id, protocol
ON CONFLICT (bucket, reporter, proxy_id, peer_id, service_id, protocol) DO UPDATE SET
    failed_trace = excluded.failed_trace, failed_us = excluded.failed_us, failed_ts_us = excluded.failed_ts_us;
