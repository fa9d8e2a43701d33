-- idempotency_keys: processed keys (HTTP Idempotency-Key and others), with retention.

CREATE TABLE idempotency_keys (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope               text NOT NULL,
    key                 text NOT NULL,
    request_fingerprint text,
    -- NULL while the first request is still being processed.
    response_status     integer,
    response_body       jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    CONSTRAINT idempotency_keys_scope_key_key UNIQUE (scope, key),
    CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    CONSTRAINT idempotency_keys_scope_length CHECK (char_length(scope) BETWEEN 1 AND 100),
    CONSTRAINT idempotency_keys_response_status_check CHECK (
        response_status BETWEEN 100 AND 599
    )
);

-- Retention cleanup deletes the oldest keys in batches.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
