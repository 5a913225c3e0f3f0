-- `sextant import` writes the file while `sextant serve` runs on the same directory: two
-- processes, each with its own index of recent calls and its own call rollups not yet written.
--
-- Call row ids are taken from the file in every write transaction, not only when a process opens
-- it, so the two never hand out the same ids: each commit finds the largest so far through
-- call_blocks_by_max_call_id.
--
-- Which call blocks the rollups do not hold yet is a list instead of one watermark: a block goes
-- in when it is stored and out in the transaction that writes its rollups. The server writes its
-- rollups about once a second, an import in every commit, and a server starting up folds in again
-- only the blocks still listed (left by a crash), never blocks another process has rolled up. (A
-- flag on call_blocks would rewrite each block's row, blob and all, to clear it.)
CREATE TABLE call_blocks_not_rolled_up (block_id INTEGER PRIMARY KEY);
INSERT INTO call_blocks_not_rolled_up (block_id)
    SELECT id FROM call_blocks WHERE id > (SELECT call_block_id FROM rollup_watermark);
DROP TABLE rollup_watermark;
CREATE INDEX call_blocks_by_max_call_id ON call_blocks (max_call_id);
