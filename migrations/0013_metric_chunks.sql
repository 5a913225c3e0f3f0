-- Metric series and samples as a TSDB keeps them, instead of a row per series (its labels as JSON
-- text under a unique index) and a row per sample with five rollup rows.
--
-- Series: the series one commit makes are one metric_series_blocks row (ids, names, labels,
-- compressed together); the head in memory finds a series by its labels. A series retention
-- removes is listed in metric_series_deleted until its whole block goes.
--
-- Samples: a commit writes its samples as one metric_appends row, all series together: the
-- write-ahead record of the in-memory head, which keeps each series' samples compressed as they come.
-- Every fifteen minutes (or once those hold 16 MB) the head writes them as one chunk per series
-- (delta-of-delta times, XOR'd values), saves
-- every series' newest sample in metric_latest_snapshot, and deletes the appends, in one
-- transaction. A start loads the series and their newest samples, then replays the appends left.
--
-- Rollups: chunks are kept to the minute horizon (a sample in a chunk takes a few bytes, far less
-- than a minute rollup row); retention rolls chunks up into hours before it deletes them, so the
-- hour tier holds only what the chunks no longer do.
CREATE TABLE metric_series_blocks (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

CREATE TABLE metric_series_deleted (
    series_id INTEGER PRIMARY KEY
);

CREATE TABLE metric_appends (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

-- Keyed by series and newest sample time: a series' chunks over a range are one range of the key.
-- `flush` tells which of two chunks holding the same time was written later (its sample wins).
CREATE TABLE metric_chunks (
    series_id INTEGER NOT NULL,
    max_ts_ms INTEGER NOT NULL,
    flush INTEGER NOT NULL,
    min_ts_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, max_ts_ms, flush)
) WITHOUT ROWID;
CREATE INDEX metric_chunks_by_time ON metric_chunks (max_ts_ms);

-- Every series' newest sample and counter state as of the last flush, in one row (the appends
-- since bring them up to date at start).
CREATE TABLE metric_latest_snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data BLOB NOT NULL
);

-- The hour tier of rollups (the others are gone), without its reference to metric_series, which
-- the step after this file drops with metric_samples and metric_latest.
CREATE TABLE metric_rollups_new (
    tier INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    min_value REAL NOT NULL,
    max_value REAL NOT NULL,
    sum_value REAL NOT NULL,
    count INTEGER NOT NULL,
    last_value REAL NOT NULL,
    last_ts_ms INTEGER NOT NULL,
    PRIMARY KEY (tier, bucket, series_id)
) WITHOUT ROWID;
INSERT INTO metric_rollups_new SELECT * FROM metric_rollups WHERE tier = 3600;
DROP TABLE metric_rollups;
ALTER TABLE metric_rollups_new RENAME TO metric_rollups;
