-- Undo 0015.

DROP FUNCTION IF EXISTS locale_fallbacks(text);
ALTER TABLE message_logs DROP COLUMN IF EXISTS subject;
ALTER TABLE users DROP COLUMN IF EXISTS locale;
DROP TABLE IF EXISTS greeting_templates;
