-- Istio's counters as /metrics and /federate expose them, kept apart from the rollups so that
-- they never decrease: retention deletes rollup rows, and a call that pairing moves between series
-- late moves in the rollups but stays counted where it was.
--
-- One row per Istio series (its labels; paired and unpaired calls count together): calls (TCP
-- connections), the duration and byte sums, and the counts of Envoy's histogram buckets as one
-- blob (zigzag varints: durations, request sizes, response sizes, not cumulative). updated_s is
-- when the series last grew; retention lets a series go once it has not grown for the hour
-- horizon, as its rollups go. A call is counted --pairing-grace after it is stored, in the
-- transaction that writes its series' new row; istio_counters_settled holds the call and
-- connection ids up to which every one is counted, and a start counts those above them again.
--
-- Existing databases start from the daily rollups, every stored call counted.
CREATE TABLE istio_counters (
    reporter INTEGER NOT NULL,
    proxy_id INTEGER NOT NULL,
    peer_id INTEGER NOT NULL,
    service_id INTEGER NOT NULL,
    protocol INTEGER NOT NULL,
    response_code INTEGER NOT NULL,
    grpc_status INTEGER NOT NULL,
    response_flags TEXT NOT NULL,
    security_policy TEXT NOT NULL,
    updated_s INTEGER NOT NULL,
    count INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    request_bytes INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    buckets BLOB NOT NULL,
    PRIMARY KEY (reporter, proxy_id, peer_id, service_id, protocol, response_code, grpc_status, response_flags,
        security_policy)
) WITHOUT ROWID;

CREATE TABLE istio_counters_settled (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    call_id INTEGER NOT NULL,
    connection_id INTEGER NOT NULL
);
