#!/usr/bin/env bash
# The two commands of the quick start:
#   ./dev.sh run    set up, migrate, seed demo data and serve on http://127.0.0.1:8000
#   ./dev.sh test   set up (Python packages, PostgreSQL) and run the whole test suite
# And:
#   ./dev.sh coverage [test dirs] [--report] [-- pytest args]
#                   set up like `test`, run the test directories under coverage (all by
#                   default, one at a time) and print line and branch coverage of shared/
#                   and asgi_gateway/, servers and CLI children included
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY="$VENV/bin/python"

setup_python() {
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: Python 3.11 or newer is required (found $(python3 --version 2>&1))" >&2
        exit 1
    fi
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV"
    fi
    # Reinstall only when the project's dependencies changed.
    local stamp="$VENV/.installed" digest
    digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        "$PY" -m pip install --quiet --upgrade pip
        "$PY" -m pip install --quiet -e ".[test]"
        echo "$digest" > "$stamp"
    fi
}

case "${1:-}" in
    run)
        setup_python
        export AA_ENV="${AA_ENV:-development}"
        "$VENV/bin/admin-assistant" db upgrade
        "$VENV/bin/admin-assistant" db seed --demo
        echo "serving on http://${AA_HOST:-127.0.0.1}:${AA_PORT:-8000} (Ctrl+C to stop)"
        exec "$VENV/bin/admin-assistant" serve --host "${AA_HOST:-127.0.0.1}" \
            --port "${AA_PORT:-8000}" --workers "${AA_WORKERS:-1}"
        ;;
    test)
        setup_python
        bash scripts/ensure-services.sh
        shift
        exec "$PY" -m pytest "$@"
        ;;
    coverage)
        setup_python
        bash scripts/ensure-services.sh
        shift
        exec "$PY" scripts/measure_coverage.py "$@"
        ;;
    *)
        echo "usage: ./dev.sh run | ./dev.sh test [pytest args] | ./dev.sh coverage [test dirs] [--report] [-- pytest args]" >&2
        exit 2
        ;;
esac
