-- Undo 0022: 0020's import_date again.

CREATE OR REPLACE FUNCTION import_date(value text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN NULL
        WHEN substr(value, 1, 4)::integer < 1 THEN NULL
        WHEN substr(value, 6, 2)::integer NOT BETWEEN 1 AND 12 THEN NULL
        WHEN substr(value, 9, 2)::integer NOT BETWEEN 1 AND extract(day FROM
            make_date(substr(value, 1, 4)::integer, substr(value, 6, 2)::integer, 1)
            + interval '1 month - 1 day')::integer THEN NULL
        ELSE value::date
    END
$$;
