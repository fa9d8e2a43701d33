-- Undo 0009: back to computing every zone by its own name. Fails (and changes
-- nothing) while a user has a zone that 0001's refresh_time_zones() leaves out.

DROP FUNCTION IF EXISTS refresh_tzdata(time);
DROP FUNCTION IF EXISTS retime_scheduled_greetings(time, uuid, uuid);
COMMENT ON FUNCTION local_send_instant(date, time, text) IS NULL;
ALTER TABLE time_zones DROP COLUMN compute_as;

CREATE OR REPLACE FUNCTION refresh_time_zones() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_added integer;
    v_name text;
    v_probe timestamp;
    v_session_zone text := current_setting('TimeZone');
BEGIN
    INSERT INTO time_zones (name)
    SELECT name FROM pg_timezone_names
    WHERE name NOT LIKE 'posix/%' AND name NOT LIKE 'right/%'
      AND name NOT IN ('posixrules', 'localtime')
    ON CONFLICT (name) DO NOTHING;
    GET DIAGNOSTICS v_added = ROW_COUNT;

    FOR v_name IN
        SELECT t.name FROM time_zones t JOIN pg_timezone_abbrevs a ON a.abbrev = t.name
    LOOP
        PERFORM set_config('TimeZone', v_name, true);
        FOREACH v_probe IN ARRAY ARRAY[
            date_trunc('year', localtimestamp) + interval '14 days 9 hours',
            date_trunc('year', localtimestamp) + interval '195 days 9 hours'
        ] LOOP
            IF v_probe::timestamptz <> (v_probe AT TIME ZONE v_name) THEN
                DELETE FROM time_zones WHERE name = v_name;
                v_added := v_added - 1;
                EXIT;
            END IF;
        END LOOP;
    END LOOP;
    PERFORM set_config('TimeZone', v_session_zone, true);
    RETURN v_added;
END
$$;

COMMENT ON FUNCTION refresh_time_zones() IS
    'Adds zones from pg_timezone_names that time_zones lacks (run after a tzdata upgrade); '
    'leaves out names that AT TIME ZONE would read as a different abbreviation.';

SELECT refresh_time_zones();
