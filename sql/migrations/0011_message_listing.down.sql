-- Undo 0011.

DROP INDEX IF EXISTS message_logs_listing_idx;
