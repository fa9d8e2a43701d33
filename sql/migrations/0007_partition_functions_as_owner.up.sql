-- Partition maintenance runs with the rights of the table's owner, so the scheduler
-- may call it while connected as the least-privileged application role (only the
-- owner of message_logs may create, attach or drop its partitions). A fixed
-- search_path keeps the functions from resolving names in a caller's schema.

ALTER FUNCTION create_monthly_partitions(integer, date, boolean)
    SECURITY DEFINER SET search_path = public, pg_temp;
ALTER FUNCTION drop_old_partitions(interval, date, boolean)
    SECURITY DEFINER SET search_path = public, pg_temp;

-- Only the owner and roles granted EXECUTE (sql/roles/app_role.sql) may call them.
REVOKE EXECUTE ON FUNCTION create_monthly_partitions(integer, date, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION drop_old_partitions(interval, date, boolean) FROM PUBLIC;
