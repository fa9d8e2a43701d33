-- The service's own database role: it may read and write rows and call the schema's
-- functions, nothing more. It cannot create, alter, drop or truncate tables; the
-- migrations (and partition maintenance) run as the owner of the schema instead.
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/roles/app_role.sql
--   psql "$OWNER_DATABASE_URL" -v app_role=birthday_app -v app_password="$APP_DB_PASSWORD" \
--        -f sql/roles/app_role.sql
--
-- Run it as a superuser or the owner of the tables (with CREATEROLE), in the service's
-- database, after `flask db upgrade`. Variables: app_role (default birthday_app),
-- app_password (default 'change-me': always pass a real one outside a laptop; it is
-- sent in the statement, so it can show in the server log when log_statement is ddl
-- or all — \password <role> in psql avoids that). The service then connects as
--   DATABASE_URL=postgresql://birthday_app:<password>@host:5432/birthday
--
-- Safe to run again: an existing role is brought back to exactly this (LOGIN,
-- NOSUPERUSER, NOCREATEDB, NOCREATEROLE, NOREPLICATION, NOBYPASSRLS, the password
-- given), grants are re-applied and extra table rights (TRUNCATE, REFERENCES,
-- TRIGGER) and CREATE on the schema or the database are taken away.
--
-- What it grants, in the current database and schema public:
--   CONNECT on the database; USAGE (not CREATE) on schema public;
--   SELECT, INSERT, UPDATE, DELETE on every table (message_logs, its partitions,
--   users, time_zones, idempotency_keys, scheduler_heartbeats, schema_migrations);
--   USAGE, SELECT on every sequence (the identity columns'); EXECUTE on every function
--   of the schema (extensions' objects are left alone).
-- And, through ALTER DEFAULT PRIVILEGES FOR ROLE <owner of message_logs>, the same on
-- tables and sequences that owner creates later: future migrations and the monthly
-- partitions. A partition belongs to whoever ran create_monthly_partitions(),
-- so run partition maintenance (sql/partitions.sql, `flask db partitions`) as that
-- owner, or run this script again afterwards. Rows read and written through
-- message_logs itself need no rights on the partitions; direct reads of a partition
-- (message_logs_default, as create_monthly_partitions' dry run does) do.
-- CREATE is also revoked on schema public from PUBLIC (PostgreSQL 15 no longer grants
-- it; a database upgraded from an older version still may), so no ordinary role can
-- create tables there.
--
-- The service's scheduler maintains partitions daily (create_monthly_partitions,
-- drop_old_partitions): as this role those calls fail ("must be owner of table
-- message_logs"), the job records the error and the rest of the scheduler carries on.
-- Schedule sql/partitions.sql as the owner instead (cron, a Kubernetes CronJob).

\set ON_ERROR_STOP on
\set QUIET on
\if :{?app_role}
\else
  \set app_role birthday_app
\endif
\if :{?app_password}
\else
  \set app_password 'change-me'
\endif

BEGIN;

SELECT current_database() AS app_database,
       (SELECT tableowner FROM pg_tables
        WHERE schemaname = 'public' AND tablename = 'message_logs') AS schema_owner,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_role') AS app_role_missing,
       :'app_password' = 'change-me' AS default_password
\gset

\if :{?schema_owner}
\else
  \set schema_owner ''
\endif
SELECT :'schema_owner' = '' AS not_migrated \gset
\if :not_migrated
  DO $$ BEGIN RAISE EXCEPTION 'message_logs not found: run the migrations (flask db upgrade) first'; END $$;
\endif

\if :app_role_missing
  CREATE ROLE :"app_role" LOGIN;
  \echo 'created role' :app_role
\else
  \echo 'role' :app_role 'exists: bringing it back to least privilege'
\endif
ALTER ROLE :"app_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    INHERIT PASSWORD :'app_password';

-- The database: connect, nothing else (no CREATE: no new schemas).
GRANT CONNECT ON DATABASE :"app_database" TO :"app_role";
REVOKE CREATE ON DATABASE :"app_database" FROM :"app_role";

-- The schema: use it, never create in it.
GRANT USAGE ON SCHEMA public TO :"app_role";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM :"app_role";

-- What is there now: the schema's own tables and functions. Objects of extensions
-- (pg_stat_statements' views and its reset function, pgcrypto, pg_trgm) are left as
-- the extensions set them: PUBLIC may call most of their functions already, and
-- pg_stat_statements_reset() is meant for administrators only.
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %I', c.oid::regclass,
              :'app_role'),
       format('REVOKE TRUNCATE, REFERENCES, TRIGGER ON TABLE %s FROM %I', c.oid::regclass,
              :'app_role')
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.deptype = 'e')
ORDER BY c.relname
\gexec
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE UPDATE ON ALL SEQUENCES IN SCHEMA public FROM :"app_role";
SELECT format('GRANT EXECUTE ON ROUTINE %s TO %I', p.oid::regprocedure, :'app_role')
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                    AND d.deptype = 'e')
ORDER BY p.oid::regprocedure::text
\gexec

-- What the owner creates later: new partitions, tables and sequences of future
-- migrations. (New functions need nothing: PUBLIC may execute a function unless its
-- creator revokes that.)
ALTER DEFAULT PRIVILEGES FOR ROLE :"schema_owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"schema_owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";

COMMIT;

\if :default_password
  \echo
  \echo 'WARNING: the role has the default password change-me. Pass -v app_password=... or'
  \echo '         run \\password' :app_role 'in psql before the service uses it outside a laptop.'
\endif

\echo
\echo '== the application role =='
SELECT r.rolname AS role,
       r.rolcanlogin AS login,
       r.rolsuper AS superuser,
       r.rolcreatedb AS createdb,
       r.rolcreaterole AS createrole,
       r.rolreplication AS replication,
       r.rolbypassrls AS bypassrls,
       (SELECT string_agg(m.roleid::regrole::text, ', ') FROM pg_auth_members m
        WHERE m.member = r.oid) AS member_of,
       has_schema_privilege(r.oid, 'public', 'CREATE') AS can_create_in_public,
       (SELECT count(*) FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE'))
           AS tables_writable,
       (SELECT count(*) FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
          AND has_table_privilege(r.oid, c.oid, 'TRUNCATE')) AS tables_truncatable
FROM pg_roles r
WHERE r.rolname = :'app_role';
