-- Undo 0005.

DROP INDEX IF EXISTS message_logs_pending_idx;
DROP FUNCTION IF EXISTS greeting_text(text, text, text);
DROP FUNCTION IF EXISTS local_send_instant(date, time, text);
DROP FUNCTION IF EXISTS next_occasion_date(date, date);
DROP FUNCTION IF EXISTS occasion_in_year(date, integer);
