-- message_logs: one row per (user, occasion, local date), partitioned by month.

-- The key the provider deduplicates on: {user_id}:{message_type}:{occasion_date}.
-- Declared STABLE like the to_char it calls, so the planner inlines it: the CHECK
-- below then costs a few percent of a bulk load instead of a function call per row.
CREATE FUNCTION message_idempotency_key(user_id uuid, message_type text, occasion_date date)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT user_id::text || ':' || message_type || ':' || to_char(occasion_date, 'YYYY-MM-DD')
$$;

-- Partitioned by occasion_date (the user's local calendar date), not by send time:
-- a unique constraint on a partitioned table must contain the partition key, and
-- only this choice lets PostgreSQL itself refuse a second greeting for the same
-- user, occasion and date across every partition.
CREATE TABLE message_logs (
    id                  bigint GENERATED ALWAYS AS IDENTITY,
    user_id             uuid NOT NULL REFERENCES users (id),
    message_type        text NOT NULL,
    occasion_date       date NOT NULL,
    message_content     text NOT NULL,
    scheduled_send_time timestamptz NOT NULL,
    actual_send_time    timestamptz,
    status              text NOT NULL DEFAULT 'SCHEDULED',
    retry_count         integer NOT NULL DEFAULT 0,
    last_retry_at       timestamptz,
    -- When the row is next due: the scheduled time, then each retry's backoff.
    next_attempt_at     timestamptz,
    -- Lease: a QUEUED or SENDING row whose lease has run out is recovered.
    locked_until        timestamptz,
    api_response_code   integer,
    api_response_body   text,
    error_message       text,
    idempotency_key     text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_logs_pkey PRIMARY KEY (id, occasion_date),
    CONSTRAINT message_logs_occasion_key UNIQUE (user_id, message_type, occasion_date),
    CONSTRAINT message_logs_status_check CHECK (status IN (
        'SCHEDULED', 'QUEUED', 'SENDING', 'SENT', 'RETRYING', 'FAILED', 'CANCELLED', 'EXPIRED'
    )),
    CONSTRAINT message_logs_type_check CHECK (message_type IN ('BIRTHDAY', 'ANNIVERSARY')),
    CONSTRAINT message_logs_retry_count_check CHECK (retry_count >= 0),
    CONSTRAINT message_logs_idempotency_key_check CHECK (
        idempotency_key = message_idempotency_key(user_id, message_type, occasion_date)
    ),
    CONSTRAINT message_logs_response_code_check CHECK (
        api_response_code BETWEEN 100 AND 599
    )
) PARTITION BY RANGE (occasion_date);

-- Rows whose month has no partition land here, so an insert never fails for want
-- of a partition; create_monthly_partitions() moves them out again.
CREATE TABLE message_logs_default PARTITION OF message_logs DEFAULT;

CREATE TRIGGER message_logs_set_updated_at
    BEFORE UPDATE ON message_logs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The due scan: waiting rows ordered by when they are next due.
CREATE INDEX message_logs_due_idx ON message_logs (next_attempt_at)
    WHERE status IN ('SCHEDULED', 'RETRYING');

-- The recovery scan: QUEUED or SENDING rows whose lease ran out.
CREATE INDEX message_logs_lease_idx ON message_logs (locked_until)
    WHERE status IN ('QUEUED', 'SENDING');

-- Per-user listings come from message_logs_occasion_key (user_id first); lookups by
-- id from the primary key (id first). Listings by status and date:
CREATE INDEX message_logs_status_send_time_idx ON message_logs (status, scheduled_send_time);
