-- Each occasion declares where Feb 29 falls in a common year (domain/occasions.py's
-- LeapDay): 'feb28' (the same month, never a day late: every occasion so far) or
-- 'mar1'. Planning passes each occasion's rule; the two-argument forms of 0005 stay
-- as the 'feb28' rule for scripts that call them.

CREATE FUNCTION occasion_in_year(original date, year integer, leap_day text)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN extract(month FROM original) = 2 AND extract(day FROM original) = 29
             AND NOT (year % 4 = 0 AND (year % 100 <> 0 OR year % 400 = 0))
        THEN CASE leap_day WHEN 'feb28' THEN make_date(year, 2, 28)
                           WHEN 'mar1' THEN make_date(year, 3, 1) END
        ELSE make_date(year, extract(month FROM original)::integer,
                       extract(day FROM original)::integer)
    END
$$;

CREATE FUNCTION next_occasion_date(original date, local_today date, leap_day text)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN occasion_in_year(original, extract(year FROM local_today)::integer, leap_day)
             >= local_today
        THEN occasion_in_year(original, extract(year FROM local_today)::integer, leap_day)
        ELSE occasion_in_year(original, extract(year FROM local_today)::integer + 1, leap_day)
    END
$$;
