-- Undo 0016.

DROP FUNCTION IF EXISTS delivery_window_opening(timestamptz, text, time, time);
DROP FUNCTION IF EXISTS first_local_instant(timestamp, text);
