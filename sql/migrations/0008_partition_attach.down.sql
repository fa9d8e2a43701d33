-- Undo 0008: the partition functions as 0003 defined them and 0007 secured them
-- (CREATE TABLE ... PARTITION OF, no lock_timeout of their own).

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
BEGIN
    IF months_ahead < 0 THEN
        RAISE EXCEPTION 'months_ahead must be >= 0, got %', months_ahead;
    END IF;
    -- Two maintainers at once would race on CREATE TABLE: take turns.
    PERFORM pg_advisory_xact_lock(hashtext('message_logs partitions'));

    FOR i IN 0..months_ahead LOOP
        v_start := (date_trunc('month', from_date) + make_interval(months => i))::date;
        v_end := (v_start + interval '1 month')::date;
        v_name := message_logs_partition_name(v_start);
        CONTINUE WHEN to_regclass(format('%I', v_name)) IS NOT NULL;

        SELECT count(*) INTO v_moved FROM message_logs_default
        WHERE occasion_date >= v_start AND occasion_date < v_end;

        IF NOT dry_run AND v_moved = 0 THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF message_logs FOR VALUES FROM (%L) TO (%L)',
                v_name, v_start, v_end
            );
        ELSIF NOT dry_run THEN
            -- A partition cannot be created while the DEFAULT partition holds rows
            -- of its range: park those rows, create the partition, put them back.
            CREATE TEMP TABLE message_logs_parked (LIKE message_logs) ON COMMIT DROP;
            WITH parked AS (
                DELETE FROM message_logs_default
                WHERE occasion_date >= v_start AND occasion_date < v_end
                RETURNING *
            )
            INSERT INTO message_logs_parked SELECT * FROM parked;
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF message_logs FOR VALUES FROM (%L) TO (%L)',
                v_name, v_start, v_end
            );
            INSERT INTO message_logs OVERRIDING SYSTEM VALUE
            SELECT * FROM message_logs_parked;
            DROP TABLE message_logs_parked;
            RAISE NOTICE 'moved % rows from message_logs_default to %', v_moved, v_name;
        END IF;
        partition_name := v_name;
        rows_moved := v_moved;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION create_monthly_partitions(integer, date, boolean) IS
    'Creates missing monthly partitions of message_logs for the month of from_date and '
    'months_ahead months after it, moving matching rows out of the DEFAULT partition.';

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
BEGIN
    IF retain < interval '1 month' THEN
        RAISE EXCEPTION 'retain must be at least one month, got %', retain;
    END IF;
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
END
$$;

COMMENT ON FUNCTION drop_old_partitions(interval, date, boolean) IS
    'Detaches and drops message_logs partitions whose whole range is older than '
    'as_of - retain; returns what it dropped (or would drop, with dry_run).';

DROP FUNCTION IF EXISTS message_logs_bound_lock_timeout();
