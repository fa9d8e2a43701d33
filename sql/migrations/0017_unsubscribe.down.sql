-- Undo 0017.

DROP INDEX IF EXISTS users_unsubscribed;
ALTER TABLE users DROP COLUMN IF EXISTS unsubscribed;
