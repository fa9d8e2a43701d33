-- Undo 0003: the partition maintenance functions (existing partitions stay).

DROP FUNCTION IF EXISTS drop_old_partitions(interval, date, boolean);
DROP FUNCTION IF EXISTS create_monthly_partitions(integer, date, boolean);
DROP FUNCTION IF EXISTS message_logs_partition_name(date);
