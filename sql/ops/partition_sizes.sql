-- Partitions of message_logs: bounds, rows and sizes, and whether the DEFAULT
-- partition is empty.
--
--   psql "$DATABASE_URL" -f sql/ops/partition_sizes.sql
--   psql "$DATABASE_URL" -v exact=true -f sql/ops/partition_sizes.sql   # exact counts (scans every row)
--
-- Variables: exact (default false) adds count(*) per partition, one pass over the
-- whole table; without it rows are the planner's estimate (pg_class.reltuples, blank
-- until the partition was first vacuumed or analyzed).
--
-- Healthy: one partition per month from the oldest retained month (MESSAGE_RETENTION_MONTHS,
-- 13 by default) to PARTITIONS_AHEAD months (12) after the current one, no month
-- missing, and message_logs_default EMPTY. Rows in the DEFAULT partition mean their
-- month had no partition when they were written (maintenance has not run, or the
-- dates are far off): the script then prints the create_monthly_partitions(...) call
-- that creates those months and moves the rows into them.
-- Read-only: it changes nothing.

\set QUIET on
\set ON_ERROR_STOP on
\pset null ''
\if :{?exact}
\else
  \set exact false
\endif

BEGIN TRANSACTION READ ONLY;
SET LOCAL statement_timeout = '5min';
SET LOCAL lock_timeout = '5s';
-- pg_get_expr prints the bounds' dates in the session's DateStyle.
SET LOCAL datestyle = 'ISO, YMD';

\echo
\echo '== message_logs partitions (oldest first; DEFAULT last) =='
WITH parts AS (
    SELECT c.oid,
           c.relname,
           pg_get_expr(c.relpartbound, c.oid) AS bounds,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'FROM \(''([0-9-]+)''\)'))[1]::date AS range_from,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'TO \(''([0-9-]+)''\)'))[1]::date AS range_to,
           c.reltuples
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'message_logs'::regclass
),
exact_counts AS (
    -- One pass over message_logs, only with -v exact=true (else the WHERE is false
    -- and PostgreSQL never reads the table).
    SELECT tableoid, count(*) AS n
    FROM message_logs
    WHERE :'exact'::boolean
    GROUP BY tableoid
)
SELECT p.relname AS partition,
       CASE WHEN p.range_from IS NULL THEN p.bounds
            ELSE p.range_from || ' .. ' || p.range_to END AS occasion_dates,
       CASE WHEN p.reltuples >= 0 THEN p.reltuples::bigint END AS estimated_rows,
       CASE WHEN :'exact'::boolean THEN coalesce(e.n, 0) END AS exact_rows,
       pg_size_pretty(pg_total_relation_size(p.oid)) AS total_size,
       pg_size_pretty(pg_table_size(p.oid)) AS table_size,
       pg_size_pretty(pg_indexes_size(p.oid)) AS index_size,
       CASE
           WHEN p.range_from IS NULL THEN 'default'
           WHEN current_date >= p.range_to THEN 'past'
           WHEN current_date >= p.range_from THEN 'CURRENT'
           ELSE 'future'
       END AS month
FROM parts p
LEFT JOIN exact_counts e ON e.tableoid = p.oid
ORDER BY p.range_from NULLS LAST, p.relname;

\echo '== totals =='
WITH parts AS (
    SELECT c.oid,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'FROM \(''([0-9-]+)''\)'))[1]::date AS range_from,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'TO \(''([0-9-]+)''\)'))[1]::date AS range_to,
           c.reltuples
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'message_logs'::regclass
),
months AS (
    SELECT generate_series(min(range_from), max(range_to) - 1, interval '1 month')::date AS m
    FROM parts
)
SELECT count(*) FILTER (WHERE range_from IS NOT NULL) AS monthly_partitions,
       min(range_from) AS oldest_month,
       max(range_to) AS covered_until,
       (SELECT count(*) FROM months
        WHERE NOT EXISTS (SELECT 1 FROM parts WHERE parts.range_from = months.m))
           AS missing_months_between,
       coalesce((extract(year FROM age(max(range_to), date_trunc('month', current_date)))
                 * 12 + extract(month FROM age(max(range_to), date_trunc('month', current_date)))
                 )::integer - 1, 0) AS months_ahead_of_current,
       sum(greatest(reltuples, 0))::bigint AS estimated_rows,
       pg_size_pretty(sum(pg_total_relation_size(oid))) AS total_size,
       pg_size_pretty(sum(pg_table_size(oid))) AS table_size,
       pg_size_pretty(sum(pg_indexes_size(oid))) AS index_size
FROM parts;

-- The DEFAULT partition must be empty: say so loudly when it is not.
SELECT to_regclass('message_logs_default') IS NOT NULL AS default_exists,
       EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'message_logs'::regclass
                 AND date_trunc('month', current_date)::date
                     = (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                     'FROM \(''([0-9-]+)''\)'))[1]::date)
           AS current_month_exists
\gset
\if :current_month_exists
\else
  \echo
  \echo '!!!!! There is NO partition for the current month. Run sql/partitions.sql or `flask db partitions`. !!!!!'
\endif
\if :default_exists
  SELECT count(*) AS default_rows,
         count(*) > 0 AS default_has_rows,
         format('SELECT * FROM create_monthly_partitions(%s, %L);',
                coalesce((extract(year FROM age(max(date_trunc('month', occasion_date)),
                                                min(date_trunc('month', occasion_date)))) * 12
                          + extract(month FROM age(max(date_trunc('month', occasion_date)),
                                                   min(date_trunc('month', occasion_date)))
                          ))::integer, 0),
                min(date_trunc('month', occasion_date))::date) AS default_fix
  FROM message_logs_default
  \gset
  \if :default_has_rows
    \echo
    \echo '!!!!! message_logs_default holds' :default_rows 'rows: it should be EMPTY. !!!!!'
    \echo '!!!!! Their months (below) had no partition when they were written. This creates'
    \echo '!!!!! the partitions and moves the rows into them (as the owner of the table):'
    \echo '!!!!!    ' :default_fix
    SELECT date_trunc('month', occasion_date)::date AS month,
           count(*) AS rows_in_default,
           min(occasion_date) AS first_date,
           max(occasion_date) AS last_date
    FROM message_logs_default
    GROUP BY 1
    ORDER BY 1;
  \else
    \echo
    \echo 'OK: message_logs_default is empty.'
  \endif
\else
  \echo
  \echo '!!!!! message_logs has NO DEFAULT partition: inserts for a month without a partition will FAIL. !!!!!'
\endif

COMMIT;
