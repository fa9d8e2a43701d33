-- Undo 0020.

DROP FUNCTION IF EXISTS import_date(text);
