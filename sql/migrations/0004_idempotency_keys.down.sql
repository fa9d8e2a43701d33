-- Undo 0004.

DROP TABLE IF EXISTS idempotency_keys;
