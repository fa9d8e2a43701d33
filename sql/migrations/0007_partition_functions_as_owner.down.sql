-- Undo 0007.

GRANT EXECUTE ON FUNCTION create_monthly_partitions(integer, date, boolean) TO PUBLIC;
GRANT EXECUTE ON FUNCTION drop_old_partitions(interval, date, boolean) TO PUBLIC;
ALTER FUNCTION create_monthly_partitions(integer, date, boolean) SECURITY INVOKER RESET search_path;
ALTER FUNCTION drop_old_partitions(interval, date, boolean) SECURITY INVOKER RESET search_path;
