-- The suppression list and the provider's events (docs/recipients.md).
--
-- An address listed here is never sent to: nothing is planned for a live user with it,
-- and a pending greeting is CANCELLED with the reason "address suppressed: <reason>".
-- Emails are stored lower-cased, as users.email is, so they compare case-insensitively.
CREATE TABLE suppressions (
    email      text PRIMARY KEY CONSTRAINT suppressions_email_lower CHECK (email = lower(email)),
    reason     text NOT NULL CONSTRAINT suppressions_reason_check
               CHECK (reason IN ('bounce', 'complaint', 'no_such_recipient', 'manual')),
    source     text NOT NULL CONSTRAINT suppressions_source_check
               CHECK (source IN ('api', 'channel', 'webhook')),
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- GET /suppressions?reason=… pages by (created_at, email).
CREATE INDEX suppressions_reason_created ON suppressions (reason, created_at, email);
CREATE INDEX suppressions_created ON suppressions (created_at, email);

-- Every provider event accepted once (POST /webhooks/provider): a replayed id changes
-- nothing. Kept as the record of bounces (soft ones included) and complaints.
CREATE TABLE provider_events (
    id              text PRIMARY KEY,
    type            text NOT NULL CONSTRAINT provider_events_type_check
                    CHECK (type IN ('bounce', 'complaint', 'delivered')),
    bounce_type     text CONSTRAINT provider_events_bounce_type_check
                    CHECK (bounce_type IN ('hard', 'soft')),
    email           text NOT NULL,
    idempotency_key text,
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_events_email ON provider_events (email);

-- When the provider reported the greeting delivered to the mailbox.
ALTER TABLE message_logs ADD COLUMN delivered_at timestamptz;
