#!/usr/bin/env bash
# Restore a deploy/backup.sh dump (pg_dump -Fc) into a database, creating it when it
# is missing.
#
#   deploy/restore.sh backups/birthday-20260301T020000Z.dump postgresql://postgres@127.0.0.1:5432/birthday_restored
#   deploy/restore.sh --clean backups/birthday-….dump postgresql://postgres@127.0.0.1:5432/birthday_staging
#
# Connect as a role that may create databases (a superuser on a laptop). The restore
# runs in ONE transaction (pg_restore --single-transaction --exit-on-error): it
# applies completely or not at all. Objects are owned by the role that restores
# (--no-owner) and privileges are not restored (--no-privileges), so a dump restores
# on a server that lacks the original roles; afterwards grant the application role
# again with sql/roles/app_role.sql (the script prints the command). A database that
# already holds tables, views, sequences or functions is refused unless --clean is
# given; --clean first drops schema public (and any other schema the dump creates)
# with everything in it, in the same transaction as the restore. (pg_restore's own
# --clean cannot drop the constraints that partitions inherit.) The restored tables
# are ANALYZEd at the end, so the planner has statistics straight away.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: deploy/restore.sh [--clean] DUMP_FILE TARGET_DATABASE_URL
  DUMP_FILE            a pg_dump -Fc archive (deploy/backup.sh writes one)
  TARGET_DATABASE_URL  postgresql://user@host:port/dbname; created when missing
  --clean              restore into a database that is not empty: drop schema
                       public (everything in it) first, in the same transaction
USAGE
}

clean=0
args=()
for arg in "$@"; do
  case "$arg" in
    --clean) clean=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      echo "restore.sh: unknown option: $arg" >&2
      usage
      exit 2
      ;;
    *) args+=("$arg") ;;
  esac
done
if [ "${#args[@]}" -ne 2 ]; then
  echo "restore.sh: expected DUMP_FILE and TARGET_DATABASE_URL" >&2
  usage
  exit 2
fi
dump="${args[0]}"
url="${args[1]}"

if [ ! -f "$dump" ] || [ ! -r "$dump" ]; then
  echo "restore.sh: no readable dump file: $dump" >&2
  exit 1
fi
for tool in pg_restore psql; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "restore.sh: $tool is not installed (the PostgreSQL client tools)" >&2
    exit 1
  fi
done
if ! pg_restore --list "$dump" >/dev/null 2>&1; then
  echo "restore.sh: $dump is not a pg_dump custom-format archive" >&2
  exit 1
fi

# postgresql://[user[:password]@][host][:port]/dbname[?options]: the database to
# create, and the same server's maintenance database `postgres` to create it from.
url_pattern='^(postgres(ql)?://[^/?]*)/([^?]+)(\?.*)?$'
if [[ ! "$url" =~ $url_pattern ]]; then
  echo "restore.sh: TARGET_DATABASE_URL must be postgresql://…/dbname: $url" >&2
  usage
  exit 2
fi
server="${BASH_REMATCH[1]}"
encoded_name="${BASH_REMATCH[3]}"
options="${BASH_REMATCH[4]}"
dbname=$(printf '%b' "${encoded_name//%/\\x}") # undo %XX escapes
maintenance_url="$server/postgres$options"

psql_quiet() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

exists=$(psql_quiet -d "$maintenance_url" -v dbname="$dbname" <<'SQL'
SELECT count(*) FROM pg_database WHERE datname = :'dbname';
SQL
)
if [ "$exists" = "0" ]; then
  psql_quiet -d "$maintenance_url" -v dbname="$dbname" <<'SQL'
CREATE DATABASE :"dbname" TEMPLATE template0;
SQL
  echo "created database $dbname"
else
  # Anything of a user's in it: relations or functions outside the system schemas.
  objects=$(psql_quiet -d "$url" <<'SQL'
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%')
     + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'));
SQL
)
  if [ "$objects" != "0" ] && [ "$clean" -eq 0 ]; then
    echo "restore.sh: database $dbname is not empty ($objects objects); refusing to restore" \
      "into it. Pass --clean to drop schema public (everything in it) first, or pick a new database." >&2
    exit 1
  fi
fi

restore_args=(--no-owner --no-privileges --exit-on-error)
if [ "$clean" -eq 0 ]; then
  pg_restore "${restore_args[@]}" --single-transaction --dbname="$url" "$dump"
else
  # pg_restore --clean cannot drop the constraints a partition inherits, so --clean
  # empties the schemas itself: public (made again as PostgreSQL 15 makes it) and any
  # other schema the dump creates, then replays the dump, all in one transaction.
  other_schemas=$(pg_restore --list "$dump" |
    awk '$4 == "SCHEMA" && $5 == "-" && $6 != "public" { print $6 }')
  {
    echo 'SET client_min_messages = warning;'
    echo 'DROP SCHEMA IF EXISTS public CASCADE;'
    for schema in $other_schemas; do
      echo "DROP SCHEMA IF EXISTS \"$schema\" CASCADE;"
    done
    echo 'CREATE SCHEMA public AUTHORIZATION pg_database_owner;'
    echo "COMMENT ON SCHEMA public IS 'standard public schema';"
    echo 'GRANT USAGE ON SCHEMA public TO PUBLIC;'
    pg_restore "${restore_args[@]}" --file=- "$dump"
  } | psql -X -q --single-transaction -v ON_ERROR_STOP=1 -d "$url" >/dev/null
fi
psql_quiet -d "$url" -c 'ANALYZE'

echo "restored $dump into $dbname"
psql -X -v ON_ERROR_STOP=1 -d "$url" <<'SQL'
SELECT (SELECT max(version) FROM schema_migrations) AS migration,
       (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM message_logs) AS message_logs,
       (SELECT count(*) FROM pg_inherits WHERE inhparent = 'message_logs'::regclass)
           AS partitions;
SQL
echo "next: grant the application role again:"
echo "  psql \"$url\" -v app_password=... -f sql/roles/app_role.sql"
