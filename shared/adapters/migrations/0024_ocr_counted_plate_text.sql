-- A plate reading's best known text once a correction changed it (NULL: its OCR text): what the
-- gate's plate counts (migration 0025) count it under. Kept on the reading, not derived again from
-- the corrections, because corrections may commit out of their seq order: each change moves the
-- count from what was counted to what is best known now. Its own migration: adding a column without
-- a default is instant, but holds a lock that blocks every read of the table until its commit.
-- Queued behind a long import, the lock would hold every reader of the table behind it too: give
-- up after 10 s instead (the migration fails and `mlstack db migrate` can run it again).
SET LOCAL lock_timeout = '10s';
ALTER TABLE ocr_readings ADD COLUMN counted_plate_text text;
