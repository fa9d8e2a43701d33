-- Partition maintenance that cannot stall every query on message_logs.
--
-- 0003 created a partition with CREATE TABLE ... PARTITION OF, which takes an ACCESS
-- EXCLUSIVE lock on message_logs. Queued behind one long transaction (a report, a
-- backup), that request made every later query on message_logs wait behind it, for as
-- long as the long transaction lasted. Now:
--
-- * A partition is created as a plain table, given a CHECK constraint equal to its
--   bounds, and then attached. ATTACH PARTITION takes only SHARE UPDATE EXCLUSIVE on
--   message_logs (reads and writes go on), and the CHECK proves the partition
--   constraint, so the new table is not scanned. The CHECK is then dropped: the
--   partition constraint says the same.
-- * The DEFAULT partition is the exception: ATTACH takes ACCESS EXCLUSIVE on
--   message_logs_default and scans it for rows of the new range. That scan is cheap
--   because the DEFAULT partition is meant to stay (nearly) empty (rows of the range
--   are moved out first; sql/ops/partition_sizes.sql shouts when it holds rows), but
--   the lock still conflicts with any query that did not prune the DEFAULT partition
--   away. The lock_timeout below bounds that wait.
-- * Retention detaches with plain DETACH PARTITION, which takes ACCESS EXCLUSIVE on
--   message_logs. DETACH ... CONCURRENTLY would not: but it is refused while the table
--   has a DEFAULT partition, and it cannot run inside a transaction block (nor,
--   therefore, in a function). It runs under the same lock_timeout.
-- * lock_timeout: every lock these functions wait for (the advisory lock included)
--   is given up after the caller's lock_timeout, or after 2 s when the caller set none.
--   While a request waits, the queries that conflict with it wait too, so this is also
--   the longest these functions can hold traffic up. Giving up raises
--   lock_not_available (55P03) and changes nothing; the caller retries later (the
--   scheduler within the hour). The caller's lock_timeout is restored on return.

CREATE OR REPLACE FUNCTION message_logs_bound_lock_timeout()
RETURNS text LANGUAGE sql VOLATILE AS $$
    -- Keep the caller's lock_timeout, or set 2 s for this transaction; returns the old one.
    SELECT CASE WHEN current_setting('lock_timeout') = '0'
                THEN (SELECT '0' FROM set_config('lock_timeout', '2s', true))
                ELSE current_setting('lock_timeout') END
$$;

CREATE OR REPLACE FUNCTION create_monthly_partitions(
    months_ahead integer DEFAULT 12,
    from_date date DEFAULT current_date,
    dry_run boolean DEFAULT false
) RETURNS TABLE (partition_name text, rows_moved bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
-- Bounds are written and read as text: pin the date format whatever the session's.
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    v_start date;
    v_end date;
    v_name text;
    v_moved bigint;
    v_caller_lock_timeout text;
BEGIN
    IF months_ahead < 0 THEN
        RAISE EXCEPTION 'months_ahead must be >= 0, got %', months_ahead;
    END IF;
    v_caller_lock_timeout := message_logs_bound_lock_timeout();
    -- Two maintainers at once would race on CREATE TABLE: take turns.
    PERFORM pg_advisory_xact_lock(hashtext('message_logs partitions'));

    FOR i IN 0..months_ahead LOOP
        v_start := (date_trunc('month', from_date) + make_interval(months => i))::date;
        v_end := (v_start + interval '1 month')::date;
        v_name := message_logs_partition_name(v_start);
        CONTINUE WHEN to_regclass(format('%I', v_name)) IS NOT NULL;

        SELECT count(*) INTO v_moved FROM message_logs_default
        WHERE occasion_date >= v_start AND occasion_date < v_end;

        IF NOT dry_run THEN
            -- Same columns, NOT NULLs, defaults and CHECKs as message_logs; indexes,
            -- the foreign key and the trigger come with ATTACH.
            EXECUTE format(
                'CREATE TABLE %I (LIKE message_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                v_name
            );
            EXECUTE format(
                'ALTER TABLE %I ADD CONSTRAINT %I'
                ' CHECK (occasion_date >= %L::date AND occasion_date < %L::date)',
                v_name, v_name || '_bounds', v_start, v_end
            );
            IF v_moved > 0 THEN
                -- ATTACH refuses while the DEFAULT partition holds rows of the range:
                -- move them into the new table first (same transaction, same ids).
                EXECUTE format(
                    'WITH moved AS (DELETE FROM message_logs_default'
                    ' WHERE occasion_date >= $1 AND occasion_date < $2 RETURNING *)'
                    ' INSERT INTO %I SELECT * FROM moved',
                    v_name
                ) USING v_start, v_end;
                RAISE NOTICE 'moved % rows from message_logs_default to %', v_moved, v_name;
            END IF;
            EXECUTE format(
                'ALTER TABLE message_logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                v_name, v_start, v_end
            );
            EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', v_name, v_name || '_bounds');
        END IF;
        partition_name := v_name;
        rows_moved := v_moved;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('lock_timeout', v_caller_lock_timeout, true);
END
$$;

COMMENT ON FUNCTION create_monthly_partitions(integer, date, boolean) IS
    'Creates missing monthly partitions of message_logs for the month of from_date and '
    'months_ahead months after it (plain table + ATTACH), moving matching rows out of the '
    'DEFAULT partition; gives up (55P03) after lock_timeout, 2 s when unset.';

CREATE OR REPLACE FUNCTION drop_old_partitions(
    retain interval DEFAULT interval '13 months',
    as_of date DEFAULT current_date,
    dry_run boolean DEFAULT false
) RETURNS TABLE (partition_name text, range_end date)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
-- pg_get_expr prints partition bounds in the session's DateStyle: pin it to ISO.
SET datestyle = 'ISO, YMD'
AS $$
DECLARE
    v_cutoff date := (as_of - retain)::date;
    v_part record;
    v_caller_lock_timeout text;
BEGIN
    IF retain < interval '1 month' THEN
        RAISE EXCEPTION 'retain must be at least one month, got %', retain;
    END IF;
    v_caller_lock_timeout := message_logs_bound_lock_timeout();
    PERFORM pg_advisory_xact_lock(hashtext('message_logs partitions'));

    FOR v_part IN
        SELECT bounds.name, bounds.upper_bound
        FROM (
            SELECT c.relname::text AS name,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                 'TO \(''([0-9-]+)''\)'))[1]::date AS upper_bound
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'message_logs'::regclass
        ) AS bounds
        -- Only partitions entirely older than the cutoff, never the current month;
        -- the DEFAULT partition has no upper bound and is never dropped.
        WHERE bounds.upper_bound <= v_cutoff
          AND bounds.upper_bound <= date_trunc('month', as_of)::date
        ORDER BY bounds.upper_bound
    LOOP
        IF NOT dry_run THEN
            EXECUTE format('ALTER TABLE message_logs DETACH PARTITION %I', v_part.name);
            EXECUTE format('DROP TABLE %I', v_part.name);
        END IF;
        partition_name := v_part.name;
        range_end := v_part.upper_bound;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('lock_timeout', v_caller_lock_timeout, true);
END
$$;

COMMENT ON FUNCTION drop_old_partitions(interval, date, boolean) IS
    'Detaches and drops message_logs partitions whose whole range is older than '
    'as_of - retain; returns what it dropped (or would drop, with dry_run); gives up '
    '(55P03) after lock_timeout, 2 s when unset.';

-- Only the owner and roles granted EXECUTE may call it (as 0007 does for the others).
REVOKE EXECUTE ON FUNCTION message_logs_bound_lock_timeout() FROM PUBLIC;
