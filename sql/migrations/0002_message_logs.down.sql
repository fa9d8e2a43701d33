-- Undo 0002: message_logs and every partition of it.

DROP TABLE IF EXISTS message_logs;
DROP FUNCTION IF EXISTS message_idempotency_key(uuid, text, date);
