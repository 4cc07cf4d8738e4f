#!/usr/bin/env bash
# Make sure what the test suite talks to is installed and running:
# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`), Chromium and wrk.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null || ! pg_up; then
    if ! command -v pg_ctlcluster >/dev/null; then
        echo "installing PostgreSQL" >&2
        apt_install postgresql
    fi
    version=$(ls /etc/postgresql | sort -V | tail -1)
    conf=/etc/postgresql/$version/main
    # Trust auth on loopback, as the suite expects (a throw-away CI/dev server only).
    if ! grep -q "admin-assistant tests" "$conf/pg_hba.conf"; then
        as_root sed -i '1i # admin-assistant tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$conf/pg_hba.conf"
    fi
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 100); do pg_up && break; sleep 0.1; done
    pg_up || { echo "error: PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
fi

command -v chromium >/dev/null || apt_install chromium
command -v wrk >/dev/null || apt_install wrk
