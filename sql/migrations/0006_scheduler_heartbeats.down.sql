-- Undo 0006.

DROP TABLE IF EXISTS scheduler_heartbeats;
