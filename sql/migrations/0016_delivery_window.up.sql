-- The recipient's delivery window (DELIVERY_WINDOW, docs/recipients.md): a greeting
-- reaches the provider only while the user's local time is within [opens, closes).
-- Zones are named by time_zones.compute_as, as everywhere (migration 0009).

-- The first instant whose local time in `zone` is `local` or later. A local time that
-- happens twice (clocks fall back) is its earlier instant, as local_send_instant
-- reads it; one that does not exist (clocks jump forward over it) gives the first
-- instant after the gap, found a minute at a time across the day before the reading
-- PostgreSQL makes of it (transitions fall on whole minutes).
CREATE FUNCTION first_local_instant(local timestamp, zone text)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN (reading AT TIME ZONE zone) = local THEN reading
        ELSE (
            SELECT min(t)
            FROM generate_series(reading - interval '1 day', reading, interval '1 minute') AS t
            WHERE (t AT TIME ZONE zone) >= local
        )
    END
    FROM (SELECT local_send_instant(local::date, local::time, zone) AS reading) AS r
$$;

-- NULL while `now` falls inside the window in `zone` (or there is no window: opens
-- NULL); else the instant it next opens: today's opening before it, tomorrow's after it.
-- One expression, so the planner inlines it into dispatch's statements.
CREATE FUNCTION delivery_window_opening(now timestamptz, zone text, opens time, closes time)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN opens IS NULL THEN NULL
        WHEN (now AT TIME ZONE zone)::time >= opens AND (now AT TIME ZONE zone)::time < closes
        THEN NULL
        WHEN (now AT TIME ZONE zone)::time < opens
        THEN first_local_instant((now AT TIME ZONE zone)::date + opens, zone)
        ELSE first_local_instant((now AT TIME ZONE zone)::date + 1 + opens, zone)
    END
$$;
