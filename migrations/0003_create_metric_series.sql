-- Ingested metric series (statsd, Envoy metrics service, OTLP metrics, remote write, scrapes).
-- `labels` is the canonical label text, `name="value"` pairs sorted by name, without __name__.
CREATE TABLE metric_series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    family TEXT NOT NULL,
    kind INTEGER NOT NULL,                  -- 0 counter, 1 gauge, 2 histogram, 3 summary, 4 untyped
    labels TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE INDEX metric_series_by_family ON metric_series (family);

-- Samples as stored: counters are cumulative and monotonic (deltas added up, resets bridged).
CREATE TABLE metric_samples (
    series_id INTEGER NOT NULL REFERENCES metric_series (id),
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, ts_ms)
) WITHOUT ROWID;
CREATE INDEX metric_samples_by_time ON metric_samples (ts_ms);

-- The newest sample per series, and what counter accumulation needs: the sender's last raw value
-- and the offset added after its resets.
CREATE TABLE metric_latest (
    series_id INTEGER PRIMARY KEY REFERENCES metric_series (id),
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    raw REAL NOT NULL,
    offset REAL NOT NULL
);
