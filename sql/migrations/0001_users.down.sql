-- Undo 0001: users, time zones, their functions and the extensions.

DROP TABLE IF EXISTS users;
DROP FUNCTION IF EXISTS users_search_text(text, text, text);
DROP FUNCTION IF EXISTS set_updated_at();
DROP FUNCTION IF EXISTS refresh_time_zones();
DROP TABLE IF EXISTS time_zones;
DROP EXTENSION IF EXISTS pg_stat_statements;
DROP EXTENSION IF EXISTS pg_trgm;
DROP EXTENSION IF EXISTS pgcrypto;
