-- Spans are stored in blocks (README, "Storage"): the spans of one commit, sorted by trace,
-- columnar, strings in a per-block dictionary, zstd-compressed (SpanBlock.swift). A commit writes
-- one block row and a few summary rows, and no index entry per span.
--
-- trace_filter is a Bloom filter of the block's trace ids; every block's filter is kept in memory
-- to find a trace by id. The span_block_names rows, one per (block, service, span name, remote
-- service), let a trace search and the name lists skip blocks they cannot match.
--
-- The blocks of small commits are merged once their spans have settled (SpanBlockCompactor).
--
-- Spans stored before this migration stay in the spans table, read alongside the blocks until
-- retention ages them out.
-- Block ids are never reused (AUTOINCREMENT): the in-memory index keeps a replaced block's id a
-- little while after compaction or retention removes it, for reads that began before.
CREATE TABLE span_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    min_start_us INTEGER NOT NULL,
    max_start_us INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    trace_filter BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX span_blocks_by_end ON span_blocks (max_start_us);

CREATE TABLE span_block_names (
    block_id INTEGER NOT NULL REFERENCES span_blocks (id) ON DELETE CASCADE,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    remote_service TEXT,
    min_start_us INTEGER NOT NULL,
    max_start_us INTEGER NOT NULL,
    max_duration_us INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    span_count INTEGER NOT NULL
);
CREATE INDEX span_block_names_by_service ON span_block_names (service, max_start_us);
CREATE INDEX span_block_names_by_block ON span_block_names (block_id);
