-- Deadlines and re-publishing of greetings.

-- MAX_LATENESS counts from the scheduled send time, whatever state the greeting is
-- in; an operator's retry (POST /messages/<id>/retry) starts a fresh window from the
-- moment of the retry, kept here. NULL: count from scheduled_send_time.
ALTER TABLE message_logs ADD COLUMN lateness_from timestamptz;

-- When the greeting was last handed to the queue. Recovery re-publishes a QUEUED row
-- whose lease ran out with a lease as long as it has already waited, so a long
-- backlog gets a few extra copies at most (doubling intervals), not one per lease.
ALTER TABLE message_logs ADD COLUMN queued_at timestamptz;

-- The expiry scan: unfinished rows by the instant their lateness counts from.
CREATE INDEX message_logs_deadline_idx
    ON message_logs ((COALESCE(lateness_from, scheduled_send_time)))
    WHERE status IN ('SCHEDULED', 'QUEUED', 'SENDING', 'RETRYING');
