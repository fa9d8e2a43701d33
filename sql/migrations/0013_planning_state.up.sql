-- What the hourly planning needs to remember between runs.
--
-- send_time: the SEND_TIME every SCHEDULED greeting was last retimed to. Planning
-- retimes the whole table (a pass over every SCHEDULED greeting, the costliest part of
-- a run with nothing to plan) only when SEND_TIME differs from it; the daily zone
-- refresh (refresh_tzdata) retimes everything anyway, with the scheduler's SEND_TIME.
-- One row at most (the key is always true).

CREATE TABLE planning_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    send_time time NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
