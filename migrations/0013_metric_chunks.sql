-- Metric samples as a TSDB keeps them: per-series chunks, compressed (delta-of-delta times, XOR'd
-- values), instead of one row per sample.
--
-- A commit writes its samples as one metric_appends row, all series together: the write-ahead record
-- of the in-memory head. About every ten minutes (or past 500,000 samples) the head writes what is
-- pending into one chunk per series, rolls it up and saves each series' newest sample in
-- metric_latest, and deletes the appends, in one transaction. A start loads the series and their
-- newest samples, then replays the appends still there.
CREATE TABLE metric_appends (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

CREATE TABLE metric_chunks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES metric_series (id),
    min_ts_ms INTEGER NOT NULL,
    max_ts_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX metric_chunks_by_series ON metric_chunks (series_id, max_ts_ms);
CREATE INDEX metric_chunks_by_time ON metric_chunks (max_ts_ms);

-- Only the minute and hour tiers of metric rollups are read (query_range) and kept (retention).
DELETE FROM metric_rollups WHERE tier NOT IN (60, 3600);
