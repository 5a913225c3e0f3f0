-- `sextant import` writes the file while `sextant serve` runs on the same directory: two
-- processes, each with its own index of recent calls and its own call rollups not yet written.
--
-- Call row ids are taken from the file in every write transaction, not only when a process opens
-- it, so the two never hand out the same ids: each commit finds the largest so far through
-- call_blocks_by_max_call_id.
--
-- Which call blocks the rollups hold is a flag of each block instead of one watermark: the server
-- writes its rollups about once a second and marks the blocks they cover, an import writes them in
-- every commit and marks its block at once, and a server starting up folds in again only the
-- blocks left unmarked (by a crash), never blocks another process has rolled up.
ALTER TABLE call_blocks ADD COLUMN rolled_up INTEGER NOT NULL DEFAULT 0;
UPDATE call_blocks SET rolled_up = 1 WHERE id <= (SELECT call_block_id FROM rollup_watermark);
DROP TABLE rollup_watermark;
CREATE INDEX call_blocks_not_rolled_up ON call_blocks (id) WHERE rolled_up = 0;
CREATE INDEX call_blocks_by_max_call_id ON call_blocks (max_call_id);
