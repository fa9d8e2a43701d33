-- Undo 0010.

DROP INDEX IF EXISTS message_logs_deadline_idx;
ALTER TABLE message_logs DROP COLUMN IF EXISTS queued_at;
ALTER TABLE message_logs DROP COLUMN IF EXISTS lateness_from;
