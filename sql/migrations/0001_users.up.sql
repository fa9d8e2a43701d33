-- Extensions, the time-zone catalogue and the users table.

CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- pg_stat_statements needs a superuser and shared_preload_libraries to be useful;
-- where the server lacks it the migration carries on with a notice.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
        EXCEPTION WHEN insufficient_privilege OR feature_not_supported THEN
            RAISE NOTICE 'pg_stat_statements not installed: %', SQLERRM;
        END;
    ELSE
        RAISE NOTICE 'pg_stat_statements is not available on this server; skipped';
    END IF;
END
$$;

-- The IANA zones this server knows. users.timezone references it, so the database
-- rejects a zone it could not compute local times for. A lookup table (rather than
-- a CHECK reading pg_timezone_names, which parses every zone file per call) keeps
-- bulk loads fast. posix/ and right/ are aliases Python's zoneinfo does not list.
CREATE TABLE time_zones (
    name text PRIMARY KEY
);

CREATE FUNCTION refresh_time_zones() RETURNS integer
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

    -- `timestamp AT TIME ZONE name` reads the name as an abbreviation first. Where
    -- a zone is also an abbreviation with another meaning (the zone CET has summer
    -- time, the abbreviation CET never does), send times computed in SQL would be
    -- wrong, so the zone is not offered. SET TimeZone always reads the zone file:
    -- compare the two readings in winter and in summer.
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

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TABLE users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    first_name       text NOT NULL,
    last_name        text NOT NULL,
    email            text NOT NULL,
    timezone         text NOT NULL REFERENCES time_zones (name),
    birthday_date    date,
    anniversary_date date,
    location_city    text,
    location_country text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    CONSTRAINT users_first_name_length CHECK (char_length(first_name) BETWEEN 1 AND 100),
    CONSTRAINT users_last_name_length CHECK (char_length(last_name) BETWEEN 1 AND 100),
    CONSTRAINT users_email_format CHECK (
        char_length(email) BETWEEN 3 AND 254 AND email ~ '^[^@\s]+@[^@\s]+$'
    ),
    CONSTRAINT users_has_occasion CHECK (
        birthday_date IS NOT NULL OR anniversary_date IS NOT NULL
    ),
    CONSTRAINT users_birthday_range CHECK (birthday_date >= DATE '1900-01-01'),
    CONSTRAINT users_anniversary_range CHECK (anniversary_date >= DATE '1900-01-01'),
    CONSTRAINT users_location_city_length CHECK (char_length(location_city) <= 100),
    CONSTRAINT users_location_country_length CHECK (char_length(location_country) <= 100)
);

CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- An email is unique among live users, whatever its case; a deleted user's email
-- can be taken again.
CREATE UNIQUE INDEX users_email_live_key ON users (lower(email)) WHERE deleted_at IS NULL;

-- Partial indexes for the active users the planner and the API read.
CREATE INDEX users_active_birthday_idx ON users (birthday_date)
    WHERE deleted_at IS NULL AND birthday_date IS NOT NULL;
CREATE INDEX users_active_anniversary_idx ON users (anniversary_date)
    WHERE deleted_at IS NULL AND anniversary_date IS NOT NULL;
CREATE INDEX users_active_timezone_idx ON users (timezone) WHERE deleted_at IS NULL;
CREATE INDEX users_active_created_idx ON users (created_at, id) WHERE deleted_at IS NULL;

-- Name and email search (ILIKE '%term%') through trigrams. Queries must use the same
-- expression: users_search_text(first_name, last_name, email).
CREATE FUNCTION users_search_text(first_name text, last_name text, email text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(first_name || ' ' || last_name || ' ' || email)
$$;

CREATE INDEX users_search_trgm_idx ON users
    USING gin (users_search_text(first_name, last_name, email) gin_trgm_ops)
    WHERE deleted_at IS NULL;
