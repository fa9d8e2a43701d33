-- Who is connected, what is running longest, and who waits on whose locks.
--
--   psql "$DATABASE_URL" -f sql/ops/connections.sql
--   psql "$DATABASE_URL" -v limit=20 -v query_chars=300 -v all_databases=true -f sql/ops/connections.sql
--
-- Variables: limit (default 10) rows of longest-running queries; query_chars (default
-- 160) characters of query text shown; all_databases (default false) includes the
-- sessions of every database of the server, not only this one.
-- Other roles' query text is shown only to superusers and members of pg_read_all_stats
-- (pg_monitor); others see "<insufficient privilege>".
--
-- Healthy: per process of the service (api workers, dramatiq workers, scheduler) a few
-- `idle` connections (the pool keeps DB_POOL_MIN_SIZE=2 open); `active` ones briefly;
-- no `idle in transaction` older than a few seconds (it holds locks and stops vacuum);
-- total well under max_connections; no query older than DB_STATEMENT_TIMEOUT_MS (30 s)
-- except the scheduler's leader, whose advisory-lock connection stays idle for hours;
-- and no rows under "sessions waiting for a lock".
-- Read-only: it changes nothing.

\set QUIET on
\set ON_ERROR_STOP on
\pset null ''
\if :{?limit}
\else
  \set limit 10
\endif
\if :{?query_chars}
\else
  \set query_chars 160
\endif
\if :{?all_databases}
\else
  \set all_databases false
\endif

BEGIN TRANSACTION READ ONLY;
SET LOCAL statement_timeout = '1min';

\echo
\echo '== connections in use =='
SELECT count(*) AS connections,
       count(*) FILTER (WHERE datname = current_database()) AS to_this_database,
       current_setting('max_connections')::integer AS max_connections,
       current_setting('superuser_reserved_connections')::integer AS reserved_for_superusers,
       round(100.0 * count(*) / current_setting('max_connections')::integer, 1) AS percent_used
FROM pg_stat_activity
WHERE backend_type = 'client backend';

\echo '== client sessions by state and application_name =='
SELECT datname AS database,
       coalesce(nullif(application_name, ''), '(none)') AS application_name,
       coalesce(state, '(unknown)') AS state,
       count(*) AS sessions,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_locks,
       date_trunc('second', max(now() - state_change)) AS longest_in_state,
       date_trunc('second', max(now() - xact_start)) AS oldest_transaction,
       string_agg(DISTINCT usename, ', ') AS roles
FROM pg_stat_activity
WHERE backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND (:'all_databases'::boolean OR datname = current_database())
GROUP BY datname, 2, 3
ORDER BY datname, 2, 3;

\echo '== longest-running queries and open transactions (not idle) =='
SELECT pid,
       datname AS database,
       usename AS role,
       coalesce(nullif(application_name, ''), '(none)') AS application_name,
       client_addr,
       state,
       date_trunc('second', now() - query_start) AS query_age,
       date_trunc('second', now() - xact_start) AS transaction_age,
       nullif(concat_ws(':', wait_event_type, wait_event), '') AS waiting_on,
       left(regexp_replace(query, '\s+', ' ', 'g'), :'query_chars'::integer) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND state IS DISTINCT FROM 'idle'
  AND (:'all_databases'::boolean OR datname = current_database())
ORDER BY least(query_start, xact_start) NULLS LAST
LIMIT :'limit'::integer;

\echo '== sessions waiting for a lock, and who blocks them (should be empty) =='
SELECT w.pid AS waiting_pid,
       coalesce(nullif(w.application_name, ''), '(none)') AS waiting_application,
       date_trunc('second', now() - w.query_start) AS waiting_for,
       l.locktype,
       l.mode AS wanted_mode,
       CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
       pg_blocking_pids(w.pid) AS blocked_by_pids,
       left(regexp_replace(w.query, '\s+', ' ', 'g'), :'query_chars'::integer) AS waiting_query
FROM pg_stat_activity w
JOIN pg_locks l ON l.pid = w.pid AND NOT l.granted
WHERE (:'all_databases'::boolean OR w.datname = current_database())
ORDER BY w.query_start;

\echo '== sessions that block others (kill the root one with SELECT pg_terminate_backend(pid)) =='
SELECT b.pid AS blocking_pid,
       coalesce(nullif(b.application_name, ''), '(none)') AS application_name,
       b.usename AS role,
       b.state,
       date_trunc('second', now() - b.xact_start) AS transaction_age,
       (SELECT count(*) FROM pg_stat_activity w WHERE b.pid = ANY (pg_blocking_pids(w.pid)))
           AS sessions_blocked,
       cardinality(pg_blocking_pids(b.pid)) = 0 AS is_root_blocker,
       left(regexp_replace(b.query, '\s+', ' ', 'g'), :'query_chars'::integer) AS last_query
FROM pg_stat_activity b
WHERE b.pid IN (SELECT unnest(pg_blocking_pids(w.pid)) FROM pg_stat_activity w)
ORDER BY b.xact_start;

COMMIT;
