-- Every zone Python's zoneinfo accepts, each with the name PostgreSQL computes it by.
--
-- `timestamp AT TIME ZONE name` reads the name as an abbreviation first, from the
-- session's timezone_abbreviations: 'CET' is then a fixed +01:00 (the IANA zone CET,
-- a link to Europe/Brussels since tzdata 2024b, has summer time), and under the
-- 'Australia' set 'EST' is +10:00. A name containing '/' is never an abbreviation.
-- So users.timezone keeps the user's own spelling, and time_zones.compute_as holds
-- the name every SQL conversion uses:
--   * a name with a '/' is its own compute_as;
--   * a name without one is computed by its zone file under posix/ when the server
--     lists it. This server reads the system tz database (--with-system-tzdata),
--     where posix/NAME is the very file zoneinfo opens for NAME, so both sides use
--     the same rules by construction, whatever the tzdata version. A link target
--     would be a second-hand fact: PostgreSQL cannot tell which zone a name links
--     to, and the answer changes between tzdata releases (CET was a zone of its own
--     before 2024b);
--   * on a server without posix/ (PostgreSQL's bundled tz data), the tzdata 2024b
--     link target of the names that are also abbreviations, otherwise the name.
-- Non-zones are left out: localtime (the host's own zone, which moves with the
-- host's configuration), posixrules (a template for POSIX TZ strings) and Factory
-- (the placeholder for "zone not set", with no local 09:00 worth the name); posix/
-- and right/ are aliases that zoneinfo does not list.
-- Every function here pins timezone_abbreviations, so a server or database set to
-- another abbreviation set cannot move an instant, even from psql.

ALTER TABLE time_zones ADD COLUMN compute_as text;

CREATE OR REPLACE FUNCTION refresh_time_zones() RETURNS integer
LANGUAGE plpgsql
SET timezone_abbreviations = 'Default'
AS $$
DECLARE
    v_changed integer;
BEGIN
    WITH server AS MATERIALIZED (
        SELECT name FROM pg_timezone_names
    ), offered AS (
        SELECT name FROM server
        WHERE name NOT LIKE 'posix/%' AND name NOT LIKE 'right/%'
          AND name NOT IN ('posixrules', 'localtime', 'Factory')
    ), link_targets (name, target) AS (
        VALUES ('CET', 'Europe/Brussels'), ('MET', 'Europe/Brussels'),
               ('EET', 'Europe/Athens'), ('WET', 'Europe/Lisbon'),
               ('EST', 'America/Panama'), ('MST', 'America/Phoenix'),
               ('HST', 'Pacific/Honolulu')
    ), computed AS (
        SELECT o.name,
               CASE
                   WHEN o.name LIKE '%/%' THEN o.name
                   WHEN p.name IS NOT NULL THEN p.name
                   WHEN t.name IS NOT NULL THEN t.name
                   ELSE o.name
               END AS compute_as
        FROM offered o
        LEFT JOIN server p ON p.name = 'posix/' || o.name
        LEFT JOIN link_targets l ON l.name = o.name
        LEFT JOIN server t ON t.name = l.target
    )
    INSERT INTO time_zones (name, compute_as)
    SELECT name, compute_as FROM computed
    ON CONFLICT (name) DO UPDATE SET compute_as = EXCLUDED.compute_as
    WHERE time_zones.compute_as IS DISTINCT FROM EXCLUDED.compute_as;
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END
$$;

COMMENT ON FUNCTION refresh_time_zones() IS
    'Adds the zones of pg_timezone_names that time_zones lacks and sets the name each is '
    'computed by (compute_as); returns how many rows it added or changed.';

SELECT refresh_time_zones();

-- A zone the server no longer offers keeps computing by its own name; Factory goes
-- unless a user still has it.
UPDATE time_zones SET compute_as = name WHERE compute_as IS NULL;
DELETE FROM time_zones z
WHERE z.name = 'Factory' AND NOT EXISTS (SELECT 1 FROM users u WHERE u.timezone = z.name);

ALTER TABLE time_zones ALTER COLUMN compute_as SET NOT NULL;

COMMENT ON COLUMN time_zones.compute_as IS
    'The name AT TIME ZONE reads as this IANA zone; every SQL conversion of local time uses it.';

COMMENT ON FUNCTION local_send_instant(date, time, text) IS
    'send_time local on a date as an instant; zone must be a time_zones.compute_as.';

-- Moves SCHEDULED greetings whose send instant no longer matches send_time local in
-- the user's zone (SEND_TIME changed, or the zone's rules did); optionally for user
-- ids in (id_after, id_upto] only. Rows already right are not written. EXECUTE plans
-- each call with its own bounds, so a batch reads only its range of the index.
CREATE FUNCTION retime_scheduled_greetings(
    send_time time, id_after uuid DEFAULT NULL, id_upto uuid DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SET timezone_abbreviations = 'Default'
AS $$
DECLARE
    v_moved integer;
BEGIN
    EXECUTE format(
        $sql$
        UPDATE message_logs m
        SET scheduled_send_time = t.send_at, next_attempt_at = t.send_at
        FROM (
            SELECT s.id, s.occasion_date,
                   local_send_instant(s.occasion_date, $1, z.compute_as) AS send_at
            FROM message_logs s
            JOIN users u ON u.id = s.user_id
            JOIN time_zones z ON z.name = u.timezone
            WHERE s.status = 'SCHEDULED' %s %s
        ) AS t
        WHERE m.id = t.id AND m.occasion_date = t.occasion_date AND m.status = 'SCHEDULED'
          AND m.scheduled_send_time IS DISTINCT FROM t.send_at
        $sql$,
        CASE WHEN id_after IS NULL THEN '' ELSE 'AND s.user_id > $2' END,
        CASE WHEN id_upto IS NULL THEN '' ELSE 'AND s.user_id <= $3' END
    ) USING send_time, id_after, id_upto;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    RETURN v_moved;
END
$$;

-- The operator's command after a tzdata upgrade (also run daily by the scheduler):
--   psql "$DATABASE_URL" -c "SELECT * FROM refresh_tzdata('09:00')"
-- with the service's SEND_TIME. Safe to run any time: a second run changes nothing.
-- Run it on a new connection: a PostgreSQL backend keeps the zone files it has read.
CREATE FUNCTION refresh_tzdata(send_time time)
RETURNS TABLE (zones_changed integer, greetings_moved integer)
LANGUAGE plpgsql
SET timezone_abbreviations = 'Default'
AS $$
BEGIN
    zones_changed := refresh_time_zones();
    greetings_moved := retime_scheduled_greetings(send_time);
    RETURN NEXT;
END
$$;
