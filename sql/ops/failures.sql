-- Greetings that ended without being sent — FAILED, EXPIRED, CANCELLED — in the last
-- :days days, grouped by error message and provider response code.
--
--   psql "$DATABASE_URL" -f sql/ops/failures.sql
--   psql "$DATABASE_URL" -v days=30 -v limit=50 -f sql/ops/failures.sql
--
-- Variables: days (default 7) — rows whose last change (updated_at, the moment they
-- reached that state) falls in the last :days days; limit (default 30) groups listed.
-- Reads every partition (a row can fail or be cancelled long before or after its
-- occasion date), through message_logs_status_send_time_idx.
--
-- Healthy: CANCELLED rows (users deleted or changed before their greeting) in small
-- numbers; FAILED and EXPIRED near zero. Many FAILED with 5xx/429 codes: the provider
-- was down longer than MAX_RETRIES retries; FAILED with another 4xx: the request is
-- refused (bad address, credentials); EXPIRED: not sent within MAX_LATENESS (48 h) of
-- its time (scheduler or workers down that long, the provider down or its Retry-After
-- past that). Our own faults (a worker lost, Redis down) never make a row FAILED.
-- POST /messages/<id>/retry sends a FAILED or EXPIRED one again, with a fresh window.
-- Read-only: it changes nothing.

\set QUIET on
\set ON_ERROR_STOP on
\pset null ''
\if :{?days}
\else
  \set days 7
\endif
\if :{?limit}
\else
  \set limit 30
\endif

BEGIN TRANSACTION READ ONLY;
SET LOCAL statement_timeout = '5min';
-- AT TIME ZONE reads 'UTC' by the session's abbreviation set: pin the service's set.
SET LOCAL timezone_abbreviations = 'Default';

\echo
\echo '== unsent greetings in the last' :days 'days, by status =='
-- by_type: rows per message type (every occasion's, however many there are).
WITH unsent AS (
    SELECT status, message_type, updated_at
    FROM message_logs
    WHERE status IN ('FAILED', 'EXPIRED', 'CANCELLED')
      AND updated_at >= now() - make_interval(days => :'days'::integer)
)
SELECT u.status,
       count(*) AS rows,
       (SELECT string_agg(t.message_type || ' ' || t.n, ', ' ORDER BY t.message_type)
        FROM (SELECT message_type, count(*) AS n FROM unsent AS x
              WHERE x.status = u.status GROUP BY message_type) AS t) AS by_type,
       min(u.updated_at) AS first_at,
       max(u.updated_at) AS last_at
FROM unsent AS u
GROUP BY u.status
ORDER BY u.status;

\echo '== by status, error message and provider response code (most frequent first) =='
SELECT status,
       api_response_code,
       left(coalesce(error_message, '(no message)'), 120) AS error_message,
       count(*) AS rows,
       round(avg(retry_count), 1) AS avg_retries,
       min(updated_at) AS first_at,
       max(updated_at) AS last_at,
       min(id) AS example_id,
       (array_agg(occasion_date ORDER BY id))[1] AS example_occasion_date
FROM message_logs
WHERE status IN ('FAILED', 'EXPIRED', 'CANCELLED')
  AND updated_at >= now() - make_interval(days => :'days'::integer)
GROUP BY status, api_response_code, error_message
ORDER BY count(*) DESC, status, api_response_code NULLS LAST, 3
LIMIT :'limit'::integer;

\echo '== per day (UTC) =='
SELECT (updated_at AT TIME ZONE 'UTC')::date AS day,
       count(*) FILTER (WHERE status = 'FAILED') AS failed,
       count(*) FILTER (WHERE status = 'EXPIRED') AS expired,
       count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled
FROM message_logs
WHERE status IN ('FAILED', 'EXPIRED', 'CANCELLED')
  AND updated_at >= now() - make_interval(days => :'days'::integer)
GROUP BY 1
ORDER BY 1;

COMMIT;
