-- Undo 0017.

ALTER TABLE users DROP COLUMN IF EXISTS unsubscribed;
