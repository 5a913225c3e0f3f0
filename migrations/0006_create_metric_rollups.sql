-- Rollups of ingested metric samples per minute (tier 60) and per hour (tier 3600), built in the
-- transaction that stores the samples: min, max, sum, count and the newest value of each bucket.
CREATE TABLE metric_rollups (
    tier INTEGER NOT NULL,
    bucket INTEGER NOT NULL,                -- bucket start, Unix seconds
    series_id INTEGER NOT NULL REFERENCES metric_series (id),
    min_value REAL NOT NULL,
    max_value REAL NOT NULL,
    sum_value REAL NOT NULL,
    count INTEGER NOT NULL,
    last_value REAL NOT NULL,
    last_ts_ms INTEGER NOT NULL,
    PRIMARY KEY (tier, bucket, series_id)
) WITHOUT ROWID;
