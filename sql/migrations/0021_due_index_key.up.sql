-- The due index also holds the id: dispatch's deferral to the delivery window reads the
-- due rows in (next_attempt_at, id) order a batch at a time, each batch starting right
-- after the last row of the one before; with next_attempt_at alone, the many rows due
-- at one instant were read and sorted again for every batch.
DROP INDEX IF EXISTS message_logs_due_idx;
CREATE INDEX message_logs_due_idx ON message_logs (next_attempt_at, id)
    WHERE status IN ('SCHEDULED', 'RETRYING');
