#!/usr/bin/env bash
# Runs the suite on SQLite, then on PostgreSQL (+ Redis) when one is reachable. In CI (CI=true)
# a missing PostgreSQL is a failure; elsewhere the last lines say plainly that those tests did
# not run. Extra arguments go to pytest (e.g. `./scripts/test.sh -k tenants`).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/adminpanel}"
REDIS="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
# The second PostgreSQL process gets a Redis database of its own: tests empty the cache
# (cache.clear() is FLUSHDB), which must not drop the other process's counters mid-test.
REDIS_B="${TEST_REDIS_URL_B:-redis://127.0.0.1:6379/14}"
ONLY="${ONLY:-}"
mkdir -p test-artifacts
rm -f test-artifacts/junit-*.xml test-artifacts/postgres*.log

reachable_pg() {
  "$PY" - "$PG_URL" <<'PYEOF' >/dev/null 2>&1
import sys, dj_database_url, psycopg
c = dj_database_url.parse(sys.argv[1])
psycopg.connect(dbname="postgres", user=c["USER"] or None, password=c["PASSWORD"] or None,
                host=c["HOST"] or None, port=c["PORT"] or None, connect_timeout=3).close()
PYEOF
}
reachable_redis() {
  "$PY" - "$REDIS" <<'PYEOF' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()
PYEOF
}

echo "=== Lint (ruff) ==="
.venv/bin/ruff check . || exit 1

# The real GoTrue clients (tests/deployed/test_api_clients.py): the pinned npm packages, installed
# with `npm ci` when node_modules is missing or older than the lock file.
CLIENTS=tests/clients
if [ ! -f "$CLIENTS/node_modules/.package-lock.json" ] || \
   [ "$CLIENTS/package-lock.json" -nt "$CLIENTS/node_modules/.package-lock.json" ]; then
  echo "=== npm ci ($CLIENTS) ==="
  (cd "$CLIENTS" && npm ci --no-audit --no-fund) || exit 1
fi

# The passes run side by side: the PostgreSQL pass in the background with its output in
# test-artifacts/postgres*.log (printed when it ends), the SQLite pass in the foreground. They
# share nothing: SQLite lives in its own temporary directory; each PostgreSQL process has its own
# test database and tenant prefix (PYTEST_XDIST_WORKER) and cache key prefix.
sqlite_rc=0; pg_rc=0; pg_state="not run"; pg_pids=()
# The PostgreSQL pass is the longer one: without extra arguments it runs as two processes (the
# console and security walks in one, the rest in the other), each with its own test database.
PG_GROUPS=("tests/console tests/security" "tests --ignore=tests/console --ignore=tests/security")
pg_run() {  # pg_run NAME DATABASE-SUFFIX REDIS-URL PYTEST-ARGS...
  local name=$1 suffix=$2 redis_url=$3; shift 3
  local extra_env=()
  if reachable_redis; then extra_env=(REDIS_URL="$redis_url" CACHE_KEY_PREFIX="test-$$-$name"); fi
  env DATABASE_URL="$PG_URL$suffix" PYTEST_XDIST_WORKER="$name" "${extra_env[@]}" "$PY" -m pytest -m "not browser" \
    --junitxml="test-artifacts/junit-$name.xml" "$@" >"test-artifacts/$name.log" 2>&1
}
if [ "$ONLY" != "sqlite" ]; then
  if reachable_pg; then
    if [ $# -eq 0 ]; then
      echo "=== Pass 2: PostgreSQL ($PG_URL), two processes in the background: test-artifacts/postgres*.log ==="
      # shellcheck disable=SC2086  # the groups are word lists on purpose
      pg_run postgres "" "$REDIS" ${PG_GROUPS[0]} & pg_pids+=($!)
      # shellcheck disable=SC2086
      pg_run postgres-b "_b" "$REDIS_B" ${PG_GROUPS[1]} & pg_pids+=($!)
    else
      echo "=== Pass 2: PostgreSQL ($PG_URL), in the background: test-artifacts/postgres.log ==="
      pg_run postgres "" "$REDIS" "$@" & pg_pids+=($!)
    fi
    pg_state="ran"
  elif [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL is not reachable at $PG_URL, and in CI the PostgreSQL pass must run." >&2
    pg_rc=1; pg_state="missing in CI"
  fi
fi
if [ "$ONLY" != "postgres" ]; then
  echo "=== Pass 1: SQLite (embedded default), browser journeys included ==="
  env -u DATABASE_URL -u REDIS_URL PYTEST_XDIST_WORKER=lite "$PY" -m pytest \
    --junitxml=test-artifacts/junit-sqlite.xml "$@"
  sqlite_rc=$?
  [ $sqlite_rc -eq 5 ] && sqlite_rc=0  # a -k filter that selects nothing here is not a failure
fi
if [ ${#pg_pids[@]} -gt 0 ]; then
  [ "$ONLY" != "postgres" ] && echo "=== Waiting for the PostgreSQL pass ==="
  for pid in "${pg_pids[@]}"; do
    wait "$pid"; rc=$?
    [ $rc -eq 5 ] && rc=0
    [ $rc -ne 0 ] && pg_rc=$rc
  done
  for log in test-artifacts/postgres.log test-artifacts/postgres-b.log; do
    [ -f "$log" ] || continue
    echo "=== Pass 2: PostgreSQL, $log ==="
    cat "$log"
  done
fi

"$PY" - <<'PYEOF'
import glob, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in glob.glob("test-artifacts/junit-*.xml"):
    for suite in ET.parse(path).getroot().iter("testsuite"):
        tests, fail, err, skip = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        failed += fail + err; skipped += skip; passed += tests - fail - err - skip
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
PYEOF
if [ "$pg_state" = "not run" ] && [ "$ONLY" != "sqlite" ]; then
  echo "NOTE: the PostgreSQL tests did NOT run: no PostgreSQL reachable at $PG_URL."
  echo "      Only the SQLite pass ran. Start PostgreSQL (or set TEST_DATABASE_URL) to run them."
fi
[ $sqlite_rc -eq 0 ] && [ $pg_rc -eq 0 ]
