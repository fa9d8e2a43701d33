-- Undo 0021.

DROP INDEX IF EXISTS message_logs_due_idx;
CREATE INDEX message_logs_due_idx ON message_logs (next_attempt_at)
    WHERE status IN ('SCHEDULED', 'RETRYING');
