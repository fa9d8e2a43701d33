-- Undo 0018.

ALTER TABLE message_logs DROP COLUMN IF EXISTS delivered_at;
DROP TABLE IF EXISTS provider_events;
DROP TABLE IF EXISTS suppressions;
