-- A tenant's captures by time, for the daily capture budget's count (shared/ocr/readings_repository.py):
-- the count runs under the tenant's capture lock on every budgeted call, and without this index it
-- read every stored reading of the tenant. Partial: only captured readings, a small share of them.
CREATE INDEX ocr_readings_captured_at ON ocr_readings (tenant_id, captured_at) WHERE captured;
