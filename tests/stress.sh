#!/usr/bin/env bash
# Run a suite RUNS times in a row while a second copy of the same suite loops alongside it, as
# a loaded CI runner would; print one line per run and a summary. Exit 1 if any counted run
# failed.
#
#   tests/stress.sh test 20            # `make test` (SQLite)
#   tests/stress.sh services 20        # `make test-services`: the suite on PostgreSQL, then the
#                                      # service tests (Redis + worker + Chromium)
#   tests/stress.sh service-tests 20   # the service tests alone (`pytest -m services`)
#
# The service suite uses PG_URL / BROKER_URL (defaults below); the concurrent copy uses the same
# Redis database (each session has its own queue) and PG_URL's database name with a "_b" suffix.
# Logs go to STRESS_DIR (default: build/stress).
set -uo pipefail
cd "$(dirname "$0")/.."

SUITE=${1:-test}
RUNS=${2:-20}
PY=${PY:-.venv/bin/python}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/plugipay}
BROKER_URL=${BROKER_URL:-redis://127.0.0.1:6379/15}
DIR=${STRESS_DIR:-build/stress}
mkdir -p "$DIR"

suite() {  # suite <database url> <log file>: one run of the chosen suite
  case "$SUITE" in
    test) "$PY" -m pytest -q >"$2" 2>&1 ;;
    services)
      DATABASE_URL=$1 "$PY" -m pytest -q >"$2" 2>&1 &&
        DATABASE_URL=$1 CELERY_BROKER_URL=$BROKER_URL PLUGIPAY_REQUIRE_SERVICES=1 \
          "$PY" -m pytest -q -m services >>"$2" 2>&1
      ;;
    service-tests)
      DATABASE_URL=$1 CELERY_BROKER_URL=$BROKER_URL PLUGIPAY_REQUIRE_SERVICES=1 \
        "$PY" -m pytest -q -m services >"$2" 2>&1
      ;;
    *) echo "unknown suite $SUITE (test, services or service-tests)" >&2; exit 2 ;;
  esac
}

stop=$DIR/$SUITE.stop
rm -f "$stop"
(  # the concurrent copy: loops until the counted runs are done
  n=0
  while [ ! -e "$stop" ]; do
    n=$((n + 1))
    if suite "${PG_URL}_b" "$DIR/$SUITE-copy-$n.log"; then r=pass; else r=FAIL; fi
    echo "copy run $n: $r" >>"$DIR/$SUITE-copy.txt"
  done
) &
copy=$!

failures=0
: >"$DIR/$SUITE.txt"
for i in $(seq "$RUNS"); do
  start=$(date +%s)
  if suite "$PG_URL" "$DIR/$SUITE-$i.log"; then result=pass; else result=FAIL; failures=$((failures + 1)); fi
  line="run $i/$RUNS: $result in $(($(date +%s) - start))s ($(grep -Eo '[0-9]+ (passed|failed)[^=]*' "$DIR/$SUITE-$i.log" | tail -n 2 | paste -sd'; ' -))"
  echo "$line" | tee -a "$DIR/$SUITE.txt"
done
touch "$stop"
wait "$copy"
echo "$SUITE: $((RUNS - failures))/$RUNS passed; concurrent copy: $(grep -c pass "$DIR/$SUITE-copy.txt" || true) passed, $(grep -c FAIL "$DIR/$SUITE-copy.txt" || true) failed" |
  tee -a "$DIR/$SUITE.txt"
[ "$failures" -eq 0 ]
