-- Reading a date of an import's staging table (imports/, repositories/user_imports.py)
-- without raising: NULL unless the text is a real calendar date written YYYY-MM-DD, so
-- a million rows are checked in one statement instead of failing on the first bad one.
CREATE FUNCTION import_date(value text) RETURNS date
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
