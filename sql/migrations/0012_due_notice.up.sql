-- Wake the scheduler when a greeting falls due soon.
--
-- The scheduler looks for due greetings every DISPATCH_INTERVAL_SECONDS and, in
-- between, sleeps until the earliest one it knows of. A greeting planned or retried
-- after it last looked (a user created on their birthday after the send time, a
-- provider retry a few seconds out) would wait for the next look; this trigger sends
-- NOTIFY birthday_due for it instead, and the scheduler, which LISTENs, looks again at
-- once. Only for greetings due within the hour (the longest dispatch interval): a
-- later one is found by a regular look before it is due. PostgreSQL sends one notice
-- per transaction however many rows it plans, at commit, and none on rollback.

CREATE FUNCTION notify_due_soon() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('birthday_due', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER message_logs_due_soon
    AFTER INSERT OR UPDATE OF status, next_attempt_at ON message_logs
    FOR EACH ROW
    WHEN (NEW.status IN ('SCHEDULED', 'RETRYING')
          AND NEW.next_attempt_at < now() + interval '1 hour')
    EXECUTE FUNCTION notify_due_soon();
