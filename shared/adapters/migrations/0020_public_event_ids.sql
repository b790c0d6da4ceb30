-- Attendance events are answered with a random id, not the serial key: consecutive serials across
-- tenants would let one tenant watch the platform's volume.
ALTER TABLE attendance_events ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid();
