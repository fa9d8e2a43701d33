-- Partition maintenance for message_logs, the same work as `flask db partitions`:
-- create the monthly partitions of the current month and the next :ahead months
-- (moving any matching rows out of the DEFAULT partition), then drop partitions
-- entirely older than :retain_months months. With -v dry_run=true nothing changes.
-- Any lock not granted within :lock_timeout (default 2s) makes it give up, changing
-- nothing (ERROR: canceling statement due to lock timeout): run it again later.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/partitions.sql
--   psql "$DATABASE_URL" -v ahead=18 -v retain_months=24 -v dry_run=true -f sql/partitions.sql
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -v lock_timeout=10s -f sql/partitions.sql

\if :{?ahead}
\else
  \set ahead 12
\endif
\if :{?retain_months}
\else
  \set retain_months 13
\endif
\if :{?dry_run}
\else
  \set dry_run false
\endif
\if :{?lock_timeout}
\else
  \set lock_timeout 2s
\endif

BEGIN;
-- While a lock request waits, the queries that conflict with it wait behind it.
SELECT set_config('lock_timeout', :'lock_timeout', true) AS lock_timeout;

SELECT partition_name AS created, rows_moved
FROM create_monthly_partitions(:'ahead'::integer, current_date, :'dry_run'::boolean);

SELECT partition_name AS dropped, range_end
FROM drop_old_partitions(make_interval(months => :'retain_months'::integer), current_date,
                         :'dry_run'::boolean);

COMMIT;

SELECT c.relname AS partition_name,
       pg_get_expr(c.relpartbound, c.oid) AS bounds,
       c.reltuples::bigint AS estimated_rows
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'message_logs'::regclass
ORDER BY c.relname;
