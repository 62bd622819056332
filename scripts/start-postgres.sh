#!/usr/bin/env bash
# Starts a private PostgreSQL server from the distribution's packages (no container runtime needed)
# and prints its connection string. Data lives in $TRANSACTOR_PGDATA (default: .pgdata/ in the repo).
#
#   scripts/start-postgres.sh            # start (installs the packages first if missing, as root)
#   scripts/start-postgres.sh stop       # stop it
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGDATA="${TRANSACTOR_PGDATA:-$ROOT/.pgdata}"
PGPORT="${TRANSACTOR_PGPORT:-55432}"
DATABASE="${TRANSACTOR_PGDATABASE:-transactor}"

bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [[ -z "$(bin_dir)" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "PostgreSQL's server binaries are missing: run 'sudo apt-get install postgresql'." >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
BIN="$(bin_dir)"

# initdb and postgres refuse to run as root: use the postgres user the package creates.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [[ "${1:-start}" == "stop" ]]; then
    as_owner "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop
    exit 0
fi

if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
    mkdir -p "$PGDATA"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$PGDATA"
    as_owner "$BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >/dev/null
fi

if ! as_owner "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    as_owner "$BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
        -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
fi

"$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1 \
    || "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE $DATABASE" >/dev/null

echo "Host=127.0.0.1;Port=$PGPORT;Username=postgres;Database=$DATABASE"
