-- The dispatch backlog: SCHEDULED and RETRYING greetings already due (next_attempt_at
-- has passed) that the dispatcher has not yet queued, by hour, with the age of the
-- oldest; and when the scheduler's jobs last succeeded.
--
--   psql "$DATABASE_URL" -f sql/ops/due_backlog.sql
--   psql "$DATABASE_URL" -v max_lateness='72 hours' -f sql/ops/due_backlog.sql
--
-- Variables: max_lateness (default '48 hours', the service's MAX_LATENESS) — due rows
-- older than this will not be sent: the next dispatch marks them EXPIRED.
--
-- Healthy: an empty or tiny backlog whose oldest row is younger than about twice
-- DISPATCH_INTERVAL_SECONDS (30 s) — dispatch claims DISPATCH_BATCH_SIZE (500) rows per
-- transaction and runs every 30 s — with at most the hours just past listed, nothing
-- past max_lateness, and the dispatch job's last success seconds ago. A backlog that
-- grows from hour to hour means no scheduler is leading (heartbeats stale: see
-- /health) or dispatch cannot keep up; RETRYING rows due now are normal while the
-- provider's circuit breaker is open.
-- Read-only: it changes nothing.

\set QUIET on
\set ON_ERROR_STOP on
\pset null ''
\if :{?max_lateness}
\else
  \set max_lateness '48 hours'
\endif

BEGIN TRANSACTION READ ONLY;
SET LOCAL statement_timeout = '1min';

\echo
\echo '== due now and not yet queued: summary =='
-- The same predicate as the dispatcher's, served by message_logs_due_idx.
SELECT count(*) AS due_rows,
       count(*) FILTER (WHERE status = 'SCHEDULED') AS scheduled,
       count(*) FILTER (WHERE status = 'RETRYING') AS retrying,
       count(*) FILTER (WHERE next_attempt_at < now() - :'max_lateness'::interval)
           AS past_max_lateness,
       min(next_attempt_at) AS oldest_due_at,
       date_trunc('second', now() - min(next_attempt_at)) AS oldest_due_age
FROM message_logs
WHERE status IN ('SCHEDULED', 'RETRYING')
  AND next_attempt_at <= now();

\echo '== due rows by hour of next_attempt_at (oldest first) =='
-- by_type: rows per message type (every occasion's, however many there are).
WITH due AS (
    SELECT date_trunc('hour', next_attempt_at) AS due_hour, status, message_type,
           next_attempt_at
    FROM message_logs
    WHERE status IN ('SCHEDULED', 'RETRYING')
      AND next_attempt_at <= now()
)
SELECT d.due_hour,
       count(*) AS rows,
       count(*) FILTER (WHERE d.status = 'SCHEDULED') AS scheduled,
       count(*) FILTER (WHERE d.status = 'RETRYING') AS retrying,
       (SELECT string_agg(t.message_type || ' ' || t.n, ', ' ORDER BY t.message_type)
        FROM (SELECT message_type, count(*) AS n FROM due AS x
              WHERE x.due_hour = d.due_hour GROUP BY message_type) AS t) AS by_type,
       bool_or(d.next_attempt_at < now() - :'max_lateness'::interval) AS will_expire
FROM due AS d
GROUP BY d.due_hour
ORDER BY d.due_hour;

\echo '== coming up: due in the next hour =='
SELECT count(*) AS due_within_an_hour,
       min(next_attempt_at) AS next_due_at
FROM message_logs
WHERE status IN ('SCHEDULED', 'RETRYING')
  AND next_attempt_at > now()
  AND next_attempt_at <= now() + interval '1 hour';

\echo '== scheduler jobs (the leader writes these; a stale last_success means nobody leads) =='
SELECT job,
       leader,
       last_started_at,
       last_success_at,
       date_trunc('second', now() - last_success_at) AS since_last_success,
       left(last_error, 100) AS last_error
FROM scheduler_heartbeats
ORDER BY job;

COMMIT;
