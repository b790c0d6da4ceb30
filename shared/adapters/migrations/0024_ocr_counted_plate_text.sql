-- A plate reading's best known text once a correction changed it (NULL: its OCR text): what the
-- gate's plate counts (migration 0025) count it under. Kept on the reading, not derived again from
-- the corrections, because corrections may commit out of their seq order: each change moves the
-- count from what was counted to what is best known now. Its own migration: adding a column without
-- a default is instant, but holds a lock that blocks every read of the table until its commit.
ALTER TABLE ocr_readings ADD COLUMN counted_plate_text text;
