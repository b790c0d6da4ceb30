-- Sync events answer an id that reveals nothing: event_id is one sequence across tenants, so
-- consecutive posts of two tenants got consecutive ids and a tenant could watch the platform's
-- volume. event_uuid is random; event_id stays the internal key (cheap joins, tie-breaks).
-- No unique index: nothing looks events up by it, a collision of random UUIDs is not a practical
-- concern, and a btree over random keys would slow every intake.
ALTER TABLE sync_events ADD COLUMN event_uuid uuid NOT NULL DEFAULT gen_random_uuid();

-- A prediction now says which device asked and when that device last synced (both optional):
-- the features are as of the start of that device's sync batch.
ALTER TABLE conflict_predictions ADD COLUMN device_id text, ADD COLUMN client_last_sync_at timestamptz;
