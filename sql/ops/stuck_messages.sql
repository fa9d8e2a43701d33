-- Greetings that look stuck: QUEUED or SENDING rows whose lease (locked_until) has run
-- out, and RETRYING rows with how often they have been tried.
--
--   psql "$DATABASE_URL" -f sql/ops/stuck_messages.sql
--   psql "$DATABASE_URL" -v limit=200 -f sql/ops/stuck_messages.sql
--
-- Variables: limit (default 50) rows listed per section (the summaries count all).
--
-- A QUEUED row's lease (QUEUED_LEASE, 10 min) runs out when its broker message was
-- lost or never consumed; a SENDING row's (SENDING_LEASE, 2 min) when the worker died
-- mid-send. The scheduler's recovery (every RECOVERY_INTERVAL_SECONDS, 300 s) publishes
-- them again, so a row may sit here for up to about five minutes on its own; a QUEUED
-- row still waiting behind a long backlog gets a lease as long as it has waited. A QUEUED
-- or SENDING row without a lease is never recovered and is listed too.
--
-- Healthy: no expired leases, or only a few expired less than RECOVERY_INTERVAL ago.
-- Older ones mean recovery is not running: look at the scheduler (due_backlog.sql shows
-- its heartbeats; /health). RETRYING rows are normal while the provider has trouble;
-- retry counts near MAX_RETRIES (5) for many rows, or one error everywhere, point at
-- the provider (failures.sql).
-- Read-only: it changes nothing.

\set QUIET on
\set ON_ERROR_STOP on
\pset null ''
\if :{?limit}
\else
  \set limit 50
\endif

BEGIN TRANSACTION READ ONLY;
SET LOCAL statement_timeout = '1min';

\echo
\echo '== QUEUED / SENDING with an expired lease: summary (should be empty) =='
SELECT status,
       count(*) AS rows,
       count(*) FILTER (WHERE locked_until IS NULL) AS without_lease,
       date_trunc('second', now() - min(locked_until)) AS longest_overdue,
       date_trunc('second', now() - min(updated_at)) AS oldest_last_change,
       max(retry_count) AS max_retry_count
FROM message_logs
WHERE status IN ('QUEUED', 'SENDING')
  AND (locked_until < now() OR locked_until IS NULL)
GROUP BY status
ORDER BY status;

\echo '== QUEUED / SENDING with an expired lease (longest overdue first) =='
SELECT id,
       occasion_date,
       status,
       message_type,
       user_id,
       locked_until,
       date_trunc('second', now() - locked_until) AS lease_overdue_by,
       date_trunc('second', now() - updated_at) AS since_last_change,
       date_trunc('second', now() - scheduled_send_time) AS since_scheduled,
       retry_count,
       last_retry_at,
       left(error_message, 80) AS last_error
FROM message_logs
WHERE status IN ('QUEUED', 'SENDING')
  AND (locked_until < now() OR locked_until IS NULL)
ORDER BY locked_until NULLS FIRST, id
LIMIT :'limit'::integer;

\echo '== RETRYING rows by retry count =='
SELECT retry_count,
       count(*) AS rows,
       count(*) FILTER (WHERE next_attempt_at <= now()) AS due_now,
       min(next_attempt_at) AS next_due,
       max(last_retry_at) AS last_retry,
       date_trunc('second', now() - min(scheduled_send_time)) AS oldest_since_scheduled,
       mode() WITHIN GROUP (ORDER BY api_response_code) AS usual_response_code
FROM message_logs
WHERE status = 'RETRYING'
GROUP BY retry_count
ORDER BY retry_count;

\echo '== RETRYING rows (most retried first) =='
SELECT id,
       occasion_date,
       message_type,
       user_id,
       retry_count,
       last_retry_at,
       next_attempt_at,
       CASE WHEN next_attempt_at <= now()
            THEN 'due ' || date_trunc('second', now() - next_attempt_at) || ' ago'
            ELSE 'in ' || date_trunc('second', next_attempt_at - now()) END AS next_attempt,
       date_trunc('second', now() - scheduled_send_time) AS since_scheduled,
       api_response_code,
       left(error_message, 80) AS last_error
FROM message_logs
WHERE status = 'RETRYING'
ORDER BY retry_count DESC, next_attempt_at, id
LIMIT :'limit'::integer;

COMMIT;
