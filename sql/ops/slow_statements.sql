-- The statements that cost the most time, from pg_stat_statements: the top :limit by
-- total execution time (where the server's time goes) and by mean time per call (the
-- slowest single statements), for this database.
--
--   psql "$DATABASE_URL" -f sql/ops/slow_statements.sql
--   psql "$DATABASE_URL" -v limit=25 -v min_calls=100 -v query_chars=300 -f sql/ops/slow_statements.sql
--
-- Variables: limit (default 10) rows per list; min_calls (default 5) leaves statements
-- called fewer times out of the by-mean list; query_chars (default 160) characters of
-- normalised query text shown.
--
-- Needs the pg_stat_statements extension in this database (migration 0001 creates it
-- when the server offers it) AND the library loaded at server start:
--   shared_preload_libraries = 'pg_stat_statements'   (postgresql.conf; then restart)
-- Without either, the view cannot be read and this script prints a notice saying
-- which is missing instead of failing. Reading shared_preload_libraries and other
-- roles' query text needs a superuser or pg_read_all_settings / pg_read_all_stats
-- (both in pg_monitor). Counters accumulate since the last
-- SELECT pg_stat_statements_reset(); the second list shows when that was.
--
-- Healthy: the top of the total-time list is the service's hot paths (the dispatch
-- claim, send_greeting's status updates, user lookups), each with a mean of a few
-- milliseconds; no statement's mean near DB_STATEMENT_TIMEOUT_MS (30 s) except the
-- planner's batched INSERT … SELECT and bulk seeds.
-- Read-only: it changes nothing.

\set QUIET on
\set ON_ERROR_STOP on
\pset null ''
\if :{?limit}
\else
  \set limit 10
\endif
\if :{?min_calls}
\else
  \set min_calls 5
\endif
\if :{?query_chars}
\else
  \set query_chars 160
\endif

BEGIN TRANSACTION READ ONLY;
SET LOCAL statement_timeout = '1min';

-- Is the extension installed here, and is its library preloaded? The view raises an
-- error ("must be loaded via shared_preload_libraries") when it is not, so decide
-- before touching it. pg_settings hides shared_preload_libraries from roles that may
-- not read it (no row): then the answer is unknown and the view is not read either.
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS pgss_installed,
       coalesce((SELECT extnamespace::regnamespace::text FROM pg_extension
                 WHERE extname = 'pg_stat_statements'), 'public') AS pgss_schema,
       EXISTS (SELECT 1 FROM pg_settings WHERE name = 'shared_preload_libraries')
           AS pgss_setting_visible,
       EXISTS (SELECT 1
               FROM pg_settings s,
                    unnest(string_to_array(s.setting, ',')) AS library
               WHERE s.name = 'shared_preload_libraries'
                 AND btrim(library, ' "') = 'pg_stat_statements') AS pgss_preloaded,
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')
           AS pgss_available,
       -- total_exec_time and friends came with 1.8 (PostgreSQL 13), the _info view with 1.9.
       coalesce((SELECT string_to_array(extversion, '.')::integer[] >= '{1,8}'
                 FROM pg_extension WHERE extname = 'pg_stat_statements'), false) AS pgss_current,
       coalesce((SELECT string_to_array(extversion, '.')::integer[] >= '{1,9}'
                 FROM pg_extension WHERE extname = 'pg_stat_statements'), false) AS pgss_has_info
\gset

\if :pgss_installed
  \if :pgss_preloaded
    \set pgss_ready :pgss_current
    \if :pgss_current
    \else
      \echo
      \echo 'NOTICE: the pg_stat_statements extension in this database is older than 1.8 (it was'
      \echo '        not updated after a server upgrade). As a superuser:'
      \echo '        ALTER EXTENSION pg_stat_statements UPDATE;'
    \endif
  \else
    \set pgss_ready false
    \echo
    \if :pgss_setting_visible
      \echo 'NOTICE: pg_stat_statements is installed in this database but its library is not in'
      \echo '        shared_preload_libraries, so there are no statistics to show. To enable it:'
      \echo '        shared_preload_libraries = ''pg_stat_statements'' in postgresql.conf, restart.'
    \else
      \echo 'NOTICE: cannot tell whether pg_stat_statements is preloaded: this role may not read'
      \echo '        shared_preload_libraries. Run as a superuser or a member of pg_monitor.'
    \endif
  \endif
\else
  \set pgss_ready false
  \echo
  \if :pgss_available
    \echo 'NOTICE: the pg_stat_statements extension is not installed in this database.'
    \echo '        As a superuser: CREATE EXTENSION pg_stat_statements; and make sure'
    \echo '        shared_preload_libraries includes pg_stat_statements (restart after changing it).'
  \else
    \echo 'NOTICE: this server does not offer pg_stat_statements (the postgresql-contrib package'
    \echo '        is missing). Install it, add it to shared_preload_libraries, restart, and'
    \echo '        CREATE EXTENSION pg_stat_statements;'
  \endif
\endif

\if :pgss_ready
  \echo
  \echo '== top statements by total execution time (this database) =='
  SELECT round(s.total_exec_time::numeric, 1) AS total_ms,
         round((100 * s.total_exec_time / nullif(sum(s.total_exec_time) OVER (), 0))::numeric, 1)
             AS percent,
         s.calls,
         round(s.mean_exec_time::numeric, 2) AS mean_ms,
         round(s.max_exec_time::numeric, 1) AS max_ms,
         s.rows,
         round(100.0 * s.shared_blks_hit / nullif(s.shared_blks_hit + s.shared_blks_read, 0), 1)
             AS cache_hit_percent,
         r.rolname AS role,
         left(regexp_replace(s.query, '\s+', ' ', 'g'), :'query_chars'::integer) AS query
  FROM :"pgss_schema".pg_stat_statements s
  LEFT JOIN pg_roles r ON r.oid = s.userid
  WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  ORDER BY s.total_exec_time DESC
  LIMIT :'limit'::integer;

  \echo '== top statements by mean execution time (called at least' :min_calls 'times) =='
  SELECT round(s.mean_exec_time::numeric, 2) AS mean_ms,
         round(s.stddev_exec_time::numeric, 2) AS stddev_ms,
         round(s.max_exec_time::numeric, 1) AS max_ms,
         s.calls,
         round(s.total_exec_time::numeric, 1) AS total_ms,
         round(s.rows::numeric / nullif(s.calls, 0), 1) AS rows_per_call,
         s.temp_blks_written,
         r.rolname AS role,
         left(regexp_replace(s.query, '\s+', ' ', 'g'), :'query_chars'::integer) AS query
  FROM :"pgss_schema".pg_stat_statements s
  LEFT JOIN pg_roles r ON r.oid = s.userid
  WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND s.calls >= :'min_calls'::bigint
  ORDER BY s.mean_exec_time DESC
  LIMIT :'limit'::integer;

  \if :pgss_has_info
    \echo '== statistics collected since =='
    SELECT stats_reset, dealloc AS statements_evicted
    FROM :"pgss_schema".pg_stat_statements_info;
  \endif
\endif

COMMIT;
