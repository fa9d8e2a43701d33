#!/usr/bin/env bash
# Back up the service's database with pg_dump's custom format (compressed; restore it
# with deploy/restore.sh, or pg_restore, whole or table by table).
#
#   deploy/backup.sh                                     # $DATABASE_URL, backups/birthday-<UTC>.dump
#   deploy/backup.sh postgresql://postgres@db:5432/birthday /var/backups/birthday.dump
#
# DATABASE_URL defaults to $DATABASE_URL, then postgresql://postgres@127.0.0.1:5432/birthday;
# OUT_FILE to backups/birthday-<UTC timestamp>.dump under the current directory (the
# directory is created). Connect as the owner of the schema (or a superuser) so every
# object can be read. The dump is written to OUT_FILE.partial first and renamed when
# pg_dump has finished and pg_restore can read its table of contents, so a failed
# backup never leaves a file that looks complete; an existing OUT_FILE is not
# overwritten. Prints the file and its size.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: deploy/backup.sh [DATABASE_URL] [OUT_FILE]
  DATABASE_URL  postgresql://user@host:port/dbname (default: $DATABASE_URL, else
                postgresql://postgres@127.0.0.1:5432/birthday)
  OUT_FILE      where to write the pg_dump -Fc archive (default:
                backups/birthday-<UTC timestamp>.dump)
USAGE
}

case "${1:-}" in
  -h | --help)
    usage
    exit 0
    ;;
  -*)
    echo "backup.sh: unknown option: $1" >&2
    usage
    exit 2
    ;;
esac
if [ "$#" -gt 2 ]; then
  echo "backup.sh: too many arguments" >&2
  usage
  exit 2
fi

url="${1:-${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/birthday}}"
out="${2:-backups/birthday-$(date -u +%Y%m%dT%H%M%SZ).dump}"

case "$url" in
  postgresql://* | postgres://* | *=*) ;;
  *)
    echo "backup.sh: not a PostgreSQL connection URL: $url" >&2
    usage
    exit 2
    ;;
esac
if [ -z "$out" ]; then
  echo "backup.sh: OUT_FILE is empty" >&2
  usage
  exit 2
fi
if [ -e "$out" ]; then
  echo "backup.sh: $out already exists; not overwriting it" >&2
  exit 1
fi
for tool in pg_dump pg_restore; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "backup.sh: $tool is not installed (the PostgreSQL client tools)" >&2
    exit 1
  fi
done

mkdir -p "$(dirname "$out")"
partial="$out.partial"
trap 'rm -f "$partial"' EXIT

# --lock-wait-timeout: give up instead of queueing behind a long DDL lock (every
# session after us would then queue behind pg_dump's own lock request).
pg_dump --format=custom --lock-wait-timeout=60s --file="$partial" --dbname="$url"
pg_restore --list "$partial" >/dev/null
mv "$partial" "$out"
trap - EXIT

bytes=$(wc -c <"$out" | tr -d ' ')
human=$(du -h "$out" | cut -f1)
echo "backup: $out"
echo "size: $bytes bytes ($human)"
