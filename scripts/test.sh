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
rm -f test-artifacts/junit-*.xml test-artifacts/postgres*.log test-artifacts/sqlite*.log

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

# The passes run side by side, three processes on the machine's cores: SQLite as one and
# PostgreSQL as two of about equal length (measured; more processes only oversubscribe two cores:
# the suite is CPU-bound, and the deployed tier's servers starve), the hostile-input walk (the
# longest test) first in the first. They share nothing: the SQLite process has its own temporary
# directory; each PostgreSQL process its own test database, tenant prefix (PYTEST_XDIST_WORKER),
# cache key prefix and Redis database (tests' cache.clear() is FLUSHDB). Each writes
# test-artifacts/<name>.log, printed when all have ended. With arguments (e.g. -k tenants) each
# database runs as one process.
sqlite_rc=0; pg_rc=0; pg_state="not run"; pids=(); names=(); rcs=()
SQLITE_GROUPS=("tests")
PG_GROUPS=("tests/walk tests/console tests/security tests/portal tests/audit"
           "tests/api tests/jobs tests/accounts tests/tenants tests/deployed tests/webhooks tests/credentials tests/core tests/test_layout.py")
# Every test directory and file is in one PostgreSQL group.
for entry in tests/*/ tests/test_*.py; do
  entry=${entry%/}
  case "$entry" in tests/clients|tests/vendor) continue ;; esac
  case " ${PG_GROUPS[*]} " in *" $entry "*) ;; *) echo "scripts/test.sh: $entry is in no PostgreSQL group" >&2; exit 2 ;; esac
done
PG_SUFFIXES=("" "_b" "_c")
PG_NAMES=("postgres" "postgres-b" "postgres-c")
redis_for() {  # a Redis database per PostgreSQL process: 15, 14, 13
  local base=${REDIS%/*}
  [ "$1" -eq 0 ] && { echo "$REDIS"; return; }
  [ "$1" -eq 1 ] && { echo "$REDIS_B"; return; }
  echo "$base/$((15 - $1))"
}
pg_run() {  # pg_run NAME DATABASE-SUFFIX REDIS-URL PYTEST-ARGS...
  local name=$1 suffix=$2 redis_url=$3; shift 3
  local extra_env=()
  if reachable_redis; then extra_env=(REDIS_URL="$redis_url" CACHE_KEY_PREFIX="test-$$-$name"); fi
  env DATABASE_URL="$PG_URL$suffix" PYTEST_XDIST_WORKER="$name" "${extra_env[@]}" "$PY" -m pytest -m "not browser" \
    --junitxml="test-artifacts/junit-$name.xml" "$@" >"test-artifacts/$name.log" 2>&1
}
sqlite_run() {  # sqlite_run NAME PYTEST-ARGS...
  local name=$1; shift
  env -u DATABASE_URL -u REDIS_URL PYTEST_XDIST_WORKER="$name" "$PY" -m pytest \
    --junitxml="test-artifacts/junit-$name.xml" "$@" >"test-artifacts/$name.log" 2>&1
}
if [ "$ONLY" != "sqlite" ]; then
  if reachable_pg; then
    if [ $# -eq 0 ]; then
      echo "=== Pass 2: PostgreSQL ($PG_URL), ${#PG_GROUPS[@]} processes: test-artifacts/postgres*.log ==="
      for i in "${!PG_GROUPS[@]}"; do
        # shellcheck disable=SC2086  # the groups are word lists on purpose
        pg_run "${PG_NAMES[$i]}" "${PG_SUFFIXES[$i]}" "$(redis_for "$i")" ${PG_GROUPS[$i]} &
        pids+=($!); names+=("pg:${PG_NAMES[$i]}")
      done
    else
      echo "=== Pass 2: PostgreSQL ($PG_URL): test-artifacts/postgres.log ==="
      pg_run postgres "" "$REDIS" "$@" & pids+=($!); names+=("pg:postgres")
    fi
    pg_state="ran"
  elif [ "${CI:-}" = "true" ]; then
    echo "PostgreSQL is not reachable at $PG_URL, and in CI the PostgreSQL pass must run." >&2
    pg_rc=1; pg_state="missing in CI"
  fi
fi
if [ "$ONLY" != "postgres" ]; then
  if [ $# -eq 0 ]; then
    echo "=== Pass 1: SQLite (embedded default), browser journeys included, ${#SQLITE_GROUPS[@]} processes: test-artifacts/sqlite*.log ==="
    for i in "${!SQLITE_GROUPS[@]}"; do
      name=sqlite; [ "$i" -gt 0 ] && name="sqlite-$i"
      # shellcheck disable=SC2086
      sqlite_run "$name" ${SQLITE_GROUPS[$i]} & pids+=($!); names+=("sqlite:$name")
    done
  else
    echo "=== Pass 1: SQLite (embedded default): test-artifacts/sqlite.log ==="
    sqlite_run sqlite "$@" & pids+=($!); names+=("sqlite:sqlite")
  fi
fi
# A line a minute while they run (their output comes when all have ended).
( tick=0
  while sleep 5; do
    tick=$((tick + 1)); [ $((tick % 12)) -ne 0 ] && continue
    line=""
    for n in "${names[@]}"; do
      log="test-artifacts/${n#*:}.log"
      pct=$(grep -o '\[ *[0-9]*%\]' "$log" 2>/dev/null | tail -n 1 | tr -d '[] ')
      line="$line ${n#*:}=${pct:-0%}"
    done
    echo "... running:$line"
  done ) & heartbeat=$!
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; rc=$?
  [ $rc -eq 5 ] && rc=0  # a -k filter that selects nothing in one process is not a failure
  kind=${names[$i]%%:*}
  if [ $rc -ne 0 ]; then
    if [ "$kind" = "pg" ]; then pg_rc=$rc; else sqlite_rc=$rc; fi
  fi
  rcs+=("$rc")
done
kill "$heartbeat" 2>/dev/null; wait "$heartbeat" 2>/dev/null
for i in "${!names[@]}"; do
  name=${names[$i]#*:}
  echo "=== $name (exit ${rcs[$i]}): test-artifacts/$name.log ==="
  cat "test-artifacts/$name.log"
done

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
