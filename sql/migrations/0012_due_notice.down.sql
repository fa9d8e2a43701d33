-- Undo 0012.

DROP TRIGGER IF EXISTS message_logs_due_soon ON message_logs;
DROP FUNCTION IF EXISTS notify_due_soon();
