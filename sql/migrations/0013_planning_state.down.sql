-- Undo 0013.

DROP TABLE IF EXISTS planning_state;
