-- Calls are stored in blocks (README, "Storage"): the calls one commit stored or changed, each
-- as it is after the commit, column by column, label sets and strings once each, zstd-compressed
-- (CallBlock.swift). A commit writes one row here instead of a row and an index entry per call.
-- A call merged into or paired by a later commit is written again, whole, in that commit's
-- block; readers take each call from the newest block that holds it.
--
-- max_call_id is the highest call id in the block (ids are never given twice); entry_count the
-- entries, call_count those that are a call's first version. trace_filter is a Bloom filter of
-- the block's trace ids (NULL when none has one), which finds the calls of a trace.
--
-- The calls stored before this migration are moved into blocks by the migration's Swift step
-- (SextantDatabase.migrate), which then drops the requests table.
CREATE TABLE call_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    min_start_us INTEGER NOT NULL,
    max_start_us INTEGER NOT NULL,
    max_call_id INTEGER NOT NULL,
    entry_count INTEGER NOT NULL,
    call_count INTEGER NOT NULL,
    trace_filter BLOB,
    data BLOB NOT NULL
);
CREATE INDEX call_blocks_by_end ON call_blocks (max_start_us);

-- The call rollups are kept in memory for a second or so and written with the newest call block
-- they hold (at least every second, before a read of them, and at shutdown), instead of in every
-- commit. After a crash, or a failed commit, the blocks after call_block_id are folded in again.
CREATE TABLE rollup_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    call_block_id INTEGER NOT NULL
);
INSERT INTO rollup_watermark (id, call_block_id) VALUES (1, 0);
