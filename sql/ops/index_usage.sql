-- How the indexes and tables are read: index scans per index, indexes never used
-- (primary keys and unique indexes left out: they enforce rules, not speed), and
-- sequential scans per table.
--
--   psql "$DATABASE_URL" -f sql/ops/index_usage.sql
--   psql "$DATABASE_URL" -v detail=true -f sql/ops/index_usage.sql   # every partition separately
--
-- Variables: detail (default false). The partitions of message_logs each have their
-- own copy of every index; by default they are added up under the partitioned index
-- (message_logs_due_idx, ...) and the partitioned table; with -v detail=true every
-- partition's index and table gets its own row.
--
-- The counters run since the statistics were last reset (shown first) on THIS server:
-- an index used only by queries on a replica shows 0 here. Partitions created
-- recently, and a server restarted after a crash, also start from 0.
--
-- Healthy: message_logs_due_idx, message_logs_lease_idx, message_logs_pending_idx,
-- message_logs_occasion_key and users_email_live_key scanned a lot; "unused indexes"
-- empty on a server that has run for weeks (an index listed there costs writes and
-- space for nothing: look at it before dropping it, through a migration); sequential
-- scans mostly on small tables (time_zones, scheduler_heartbeats, schema_migrations),
-- not with millions of rows read per scan on users or message_logs.
-- Read-only: it changes nothing.

\set QUIET on
\set ON_ERROR_STOP on
\pset null ''
\if :{?detail}
\else
  \set detail false
\endif

BEGIN TRANSACTION READ ONLY;
SET LOCAL statement_timeout = '1min';

\echo
\echo '== statistics collected since =='
SELECT coalesce(stats_reset::text, 'never reset (counting since the database was created)')
           AS stats_reset,
       date_trunc('second', now() - stats_reset) AS collecting_for,
       pg_postmaster_start_time() AS server_started
FROM pg_stat_database
WHERE datname = current_database();

\echo '== index scans per index (partitions added up unless -v detail=true) =='
WITH idx AS (
    SELECT s.schemaname,
           s.relid,
           s.indexrelid,
           s.idx_scan,
           s.idx_tup_read,
           s.idx_tup_fetch,
           i.indisprimary,
           i.indisunique,
           pg_partition_root(s.indexrelid) IS NOT NULL AS is_partition,
           CASE WHEN :'detail'::boolean THEN s.indexrelid
                ELSE coalesce(pg_partition_root(s.indexrelid), s.indexrelid) END AS shown_index,
           CASE WHEN :'detail'::boolean THEN s.relid
                ELSE coalesce(pg_partition_root(s.relid), s.relid) END AS shown_table
    FROM pg_stat_user_indexes s
    JOIN pg_index i ON i.indexrelid = s.indexrelid
)
SELECT shown_table::regclass AS table_name,
       shown_index::regclass AS index_name,
       CASE WHEN bool_or(indisprimary) THEN 'primary'
            WHEN bool_or(indisunique) THEN 'unique' ELSE '' END AS kind,
       nullif(count(*) FILTER (WHERE is_partition), 0) AS partitions,
       sum(idx_scan) AS idx_scan,
       sum(idx_tup_read) AS tuples_read,
       sum(idx_tup_fetch) AS tuples_fetched,
       pg_size_pretty(sum(pg_relation_size(indexrelid))) AS size
FROM idx
GROUP BY shown_table, shown_index
ORDER BY shown_table::regclass::text, sum(idx_scan) DESC, shown_index::regclass::text;

\echo '== unused indexes: never scanned, not primary or unique (should be empty) =='
WITH idx AS (
    SELECT s.indexrelid,
           s.idx_scan,
           i.indisprimary OR i.indisunique OR i.indisexclusion AS enforces_constraint,
           pg_partition_root(s.indexrelid) IS NOT NULL AS is_partition,
           CASE WHEN :'detail'::boolean THEN s.indexrelid
                ELSE coalesce(pg_partition_root(s.indexrelid), s.indexrelid) END AS shown_index,
           CASE WHEN :'detail'::boolean THEN s.relid
                ELSE coalesce(pg_partition_root(s.relid), s.relid) END AS shown_table
    FROM pg_stat_user_indexes s
    JOIN pg_index i ON i.indexrelid = s.indexrelid
)
SELECT shown_table::regclass AS table_name,
       shown_index::regclass AS index_name,
       nullif(count(*) FILTER (WHERE is_partition), 0) AS partitions,
       pg_size_pretty(sum(pg_relation_size(indexrelid))) AS size,
       pg_get_indexdef(shown_index) AS definition
FROM idx
GROUP BY shown_table, shown_index
HAVING sum(idx_scan) = 0 AND NOT bool_or(enforces_constraint)
ORDER BY sum(pg_relation_size(indexrelid)) DESC, shown_index::regclass::text;

\echo '== sequential scans per table (most rows read by sequential scans first) =='
WITH tab AS (
    SELECT s.relid,
           s.seq_scan,
           s.seq_tup_read,
           s.idx_scan,
           s.n_live_tup,
           pg_partition_root(s.relid) IS NOT NULL AS is_partition,
           CASE WHEN :'detail'::boolean THEN s.relid
                ELSE coalesce(pg_partition_root(s.relid), s.relid) END AS shown_table
    FROM pg_stat_user_tables s
    JOIN pg_class c ON c.oid = s.relid
    -- A partitioned table holds no rows itself: its partitions are counted.
    WHERE c.relkind <> 'p'
)
SELECT shown_table::regclass AS table_name,
       nullif(count(*) FILTER (WHERE is_partition), 0) AS partitions,
       sum(seq_scan) AS seq_scan,
       sum(seq_tup_read) AS seq_rows_read,
       round(sum(seq_tup_read)::numeric / nullif(sum(seq_scan), 0)) AS rows_per_seq_scan,
       sum(idx_scan) AS idx_scan,
       round(100.0 * sum(idx_scan) / nullif(sum(idx_scan) + sum(seq_scan), 0), 1)
           AS idx_scan_percent,
       sum(n_live_tup) AS live_rows_estimate,
       pg_size_pretty(sum(pg_table_size(relid))) AS table_size
FROM tab
GROUP BY shown_table
ORDER BY sum(seq_tup_read) DESC NULLS LAST, shown_table::regclass::text;

COMMIT;
