-- Unsubscribe (docs/recipients.md): the occasions a person opted out of. An occasion
-- listed here has no greeting planned, and a pending one is cancelled: the SQL reads
-- the occasion's date as NULL for them (repositories/occasion_sql.py).
ALTER TABLE users ADD COLUMN unsubscribed text[] NOT NULL DEFAULT '{}';

-- The few users who opted out of anything, for the status page and /metrics counts.
CREATE INDEX users_unsubscribed ON users (id) WHERE unsubscribed <> '{}' AND deleted_at IS NULL;
