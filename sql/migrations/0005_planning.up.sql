-- Calendar functions used to plan each user's next greeting in one set-based statement.
-- scheduling/occasions.py holds the same rules in Python; a test checks that both
-- give the same instant for every supported zone and every day of several years.

-- The date an occasion is celebrated in a year: Feb 29 falls on Feb 28 when the year
-- is not a leap year (the same month, never a day late).
CREATE FUNCTION occasion_in_year(original date, year integer)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN extract(month FROM original) = 2 AND extract(day FROM original) = 29
             AND NOT (year % 4 = 0 AND (year % 100 <> 0 OR year % 400 = 0))
        THEN make_date(year, 2, 28)
        ELSE make_date(year, extract(month FROM original)::integer,
                       extract(day FROM original)::integer)
    END
$$;

-- The first celebration on or after the user's local today (today counts even after
-- the send time has passed: a user created on their birthday still gets it).
CREATE FUNCTION next_occasion_date(original date, local_today date)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN occasion_in_year(original, extract(year FROM local_today)::integer) >= local_today
        THEN occasion_in_year(original, extract(year FROM local_today)::integer)
        ELSE occasion_in_year(original, extract(year FROM local_today)::integer + 1)
    END
$$;

-- send_time local on a date, as an instant. PostgreSQL reads a local time that does
-- not exist (clocks jump forward) with the offset in force before the jump, which
-- moves it forward by the gap: what we want. A local time that happens twice
-- (clocks fall back) it reads as the later instant; we take the earlier one, as
-- Python's zoneinfo does with fold=0: the offset in force a day before is tried,
-- and kept when it is earlier and still gives back the same local time. One
-- expression, so the planner inlines it.
CREATE FUNCTION local_send_instant(occasion_date date, send_time time, zone text)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN earlier < later AND (earlier AT TIME ZONE zone) = occasion_date + send_time
        THEN earlier
        ELSE later
    END
    FROM (
        SELECT later,
               (occasion_date + send_time
                - ((later - interval '1 day') AT TIME ZONE zone
                   - (later - interval '1 day') AT TIME ZONE 'UTC')) AT TIME ZONE 'UTC' AS earlier
        FROM (SELECT (occasion_date + send_time) AT TIME ZONE zone AS later) AS pg
    ) AS both_readings
$$;

-- The greeting text (scheduling/occasions.py has the same templates).
CREATE FUNCTION greeting_text(message_type text, first_name text, last_name text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'Hey, ' || first_name || ' ' || last_name || CASE message_type
        WHEN 'BIRTHDAY' THEN ' it''s your birthday'
        ELSE ' happy anniversary'
    END
$$;

-- Planning asks, per user and occasion, whether a greeting is still on its way.
CREATE INDEX message_logs_pending_idx ON message_logs (user_id, message_type)
    WHERE status IN ('SCHEDULED', 'QUEUED', 'SENDING', 'RETRYING');
