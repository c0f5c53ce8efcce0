#!/usr/bin/env bash
# The whole test suite, against SQLite and PostgreSQL.
#
# Installs revledger with its test dependencies into .venv. Unless REVLEDGER_TEST_POSTGRES
# names a server (postgresql://user:pass@host:port/db), installs PostgreSQL with apt if
# needed, starts a throwaway cluster on 127.0.0.1 and removes it afterwards. Installs
# Chromium with apt if needed: the HTML report is tested by rendering it headless.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/venv.sh test

if [ -z "${REVLEDGER_TEST_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    echo "installing Chromium (apt)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
fi

cleanup() { :; }
if [ -z "${REVLEDGER_TEST_POSTGRES:-}" ]; then
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$pgbin" ]; then
        echo "installing PostgreSQL (apt)..." >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
        pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    pgdir=$(mktemp -d /tmp/revledger-pg.XXXXXX)
    chown postgres "$pgdir" 2>/dev/null || true
    as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$pgbin/initdb" -D "$pgdir/data" -U revledger --auth=trust >/dev/null
    as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
        -o "-h 127.0.0.1 -p $port -k $pgdir -c fsync=off -c max_connections=200" start >/dev/null
    cleanup() { as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null || true; rm -rf "$pgdir"; }
    trap cleanup EXIT
    export REVLEDGER_TEST_POSTGRES="postgresql://revledger:revledger@127.0.0.1:$port/postgres"
    export REVLEDGER_TEST_PGBIN="$pgbin" REVLEDGER_TEST_PGDATA="$pgdir/data"
fi

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
