-- scheduler_heartbeats: what the elected scheduler last did, for /health and operators.

CREATE TABLE scheduler_heartbeats (
    job             text PRIMARY KEY,
    leader          text NOT NULL,
    last_started_at timestamptz NOT NULL,
    last_success_at timestamptz,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
