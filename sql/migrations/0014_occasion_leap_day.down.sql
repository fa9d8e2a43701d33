-- Undo 0014.

DROP FUNCTION IF EXISTS next_occasion_date(date, date, text);
DROP FUNCTION IF EXISTS occasion_in_year(date, integer, text);
