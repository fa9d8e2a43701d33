-- Undo 0019.

DROP INDEX IF EXISTS users_external_id_live_key;
ALTER TABLE users DROP COLUMN IF EXISTS external_id;
