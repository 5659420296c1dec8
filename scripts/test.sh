#!/usr/bin/env bash
# `make check` (rustfmt, clippy, the unit tests of all crates), then every test: the origin's
# SQL against MariaDB alone (the database tier), end-to-end tests of the origin against the real
# services (with a test broker whose delay table is shrunk), the torture run at CI scale, the
# edge's tests through `wrangler dev`, and the API against its OpenAPI document (schemathesis,
# scripts/contract.sh). Exits non-zero on any failure.
# SECKILL_NO_TORTURE=1 / SECKILL_NO_EDGE=1 leave those parts out (for a quick local run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

# The brokers refuse every send once their disk is 90 % full (their measure: 1 - available /
# size), and the build cache outlives the clone (CI keeps ~/.cache/seckill between runs): past
# the brokers' start limit (BROKER_DISK_MAX_USED_PERCENT, 87) before building, start it afresh.
if [[ -d "$CARGO_TARGET_DIR" && "$(disk_used_pct "$SECKILL_DATA")" -ge "$BROKER_DISK_MAX_USED_PERCENT" ]]; then
  log "the disk is $(disk_used_pct "$SECKILL_DATA") % full: removing the build cache $CARGO_TARGET_DIR"
  rm -rf "$CARGO_TARGET_DIR"
fi
log "disk: $(disk_used_pct "$SECKILL_DATA") % used as the brokers count it (they delete unexpired files past 85 %, refuse sends past 90 %)"

# After a failure: what the services said, so a CI log explains a broken service by itself,
# then what the origin processes the tests started said (the latest last: a failed test's
# origins are among them, and a CI excerpt shows the end).
diagnose() {
  log "diagnostics: disk, and the warnings and errors of each service's log (deduplicated)"
  df -h "$SECKILL_DATA" >&2 || true
  du -sh "$CARGO_TARGET_DIR" "$SECKILL_DATA" 2>/dev/null >&2 || true
  local file services=("$SECKILL_LOGS"/broker-*.log "$SECKILL_LOGS"/namesrv-*.log "$SECKILL_LOGS"/mysql.err)
  for file in "${services[@]}"; do
    [[ -f "$file" ]] || continue
    log_digest "$file"
  done
  log "the latest logs of origin processes the tests started"
  # shellcheck disable=SC2012 # names are the tests' own ([a-z0-9-]); ls sorts by time
  ls -tr "$SECKILL_LOGS" 2>/dev/null | grep -E -- '-[0-9a-f]{12}(-[a-z0-9-]+)?\.log$' | tail -n 8 |
    while read -r file; do log_digest "$SECKILL_LOGS/$file"; done
}

# log_digest FILE: its last distinct errors, then its last distinct warnings (ten of each).
log_digest() {
  local file="$1"
  grep -a -q -E 'ERROR|WARN|panicked' "$file" || return 0
  printf '%s\n' "--- $file: its last distinct errors, then warnings" >&2
  # Timestamps and thread ids out, so repeats fold; a consume queue's first use is not news.
  grep -a -E 'ERROR|WARN|panicked' "$file" | grep -a -v 'ConsumeQueue was created just now' |
    sed -E 's/\x1b\[[0-9;]*m//g; s/^[0-9TZ:. -]+//; s/ThreadId\([0-9]+\) //' | cut -c1-300 |
    awk '!seen[$0]++ { if ($0 ~ /ERROR|panicked/) e[++ne] = $0; else w[++nw] = $0 }
      END { for (i = (ne > 10 ? ne - 9 : 1); i <= ne; i++) print e[i]
            for (i = (nw > 10 ? nw - 9 : 1); i <= nw; i++) print w[i] }' >&2 || true
}

# The fast tier first (make check: rustfmt, clippy, unit tests): a slip fails in a minute.
"$SECKILL_ROOT/scripts/check.sh"
"$SECKILL_ROOT/scripts/stack.sh" up
# The database tier: the origin's SQL against MariaDB alone (origin/tests/database.rs), each
# test in a database of its own that is dropped when it passes. Seconds, before any broker.
log "database tier"
DATABASE_URL="mysql://$MYSQL_USER:$MYSQL_PASSWORD@$SECKILL_HOST:$MYSQL_PORT/mysql" \
  cargo test --quiet -p seckill-origin --test database
"$SECKILL_ROOT/scripts/services.sh" start mq test
# Two brokers of their own for the broker-failover test, which kills one of them.
"$SECKILL_ROOT/scripts/services.sh" start mq pair
"$SECKILL_ROOT/scripts/services.sh" start redis-cluster
promtool check rules config/prometheus/rules.yml >/dev/null || die "config/prometheus/rules.yml does not check"
# `make status` must see what `make up` started (and says what is missing if not).
"$SECKILL_ROOT/scripts/status.sh" status || die "make status: a service of the stack is not up"

# Test databases from earlier runs (each e2e test creates its own).
mariadb --no-defaults -h "$SECKILL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" -p"$MYSQL_PASSWORD" -N \
  -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'seckill\_test\_%'" |
  while read -r db; do
    mariadb --no-defaults -h "$SECKILL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" -p"$MYSQL_PASSWORD" -e "DROP DATABASE \`$db\`"
  done

# The e2e tests run the origin in-process against the test broker.
eval "$("$SECKILL_ROOT/scripts/stack.sh" origin-env | sed 's/^/export /')"
export APP_ROCKETMQ__NAMESRV_ADDR="$SECKILL_HOST:${TEST_NAMESRV_PORT:-9877}"
export PAIR_NAMESRV_PORT="${PAIR_NAMESRV_PORT:-9878}"
export RUST_LOG="${RUST_LOG:-error}"
export SECKILL_REDIS_CLUSTER_URLS="$(redis_cluster_urls)"

threads="${SECKILL_TEST_THREADS:-4}"
failed=()

# One end-to-end binary, run a module at a time: a module's tests share the services with each
# other only, so a test that kills the broker or stalls Redis never lands in another module's run.
# The test broker's delay table is for these origins only (the test shop's use the stack's broker).
export APP_ROCKETMQ__DELAY_LEVELS="$TEST_DELAY_LEVELS"
cargo test --quiet -p seckill-e2e --test e2e --no-run
mapfile -t modules < <(cargo test --quiet -p seckill-e2e --test e2e -- --list --format terse 2>/dev/null |
  sed -n 's/^\([a-z0-9_]*\)::.*: test$/\1/p' | sort -u)
[[ ${#modules[@]} -gt 0 ]] || die "the e2e binary lists no test"
for module in "${modules[@]}"; do
  log "end-to-end: $module"
  cargo test -p seckill-e2e --test e2e -- --test-threads="$threads" "$module::" || failed+=("e2e $module")
done
unset APP_ROCKETMQ__DELAY_LEVELS
if [[ ${#failed[@]} -gt 0 ]]; then
  diagnose
  die "failed: ${failed[*]}"
fi

# From here a failure exits at once (set -e): say what the services said first.
trap 'rc=$?; [[ $rc -eq 0 ]] || diagnose; exit $rc' EXIT

if [[ "${SECKILL_NO_TORTURE:-}" != 1 ]]; then
  # After the other tests: it restarts and kills the pair's masters. `make torture` is the
  # full-size run.
  log "torture at CI scale (every fault, a tenth of the load; make torture runs the full one)"
  cargo build --quiet -p seckill-e2e --bins
  APP_ROCKETMQ__DELAY_LEVELS="$TEST_DELAY_LEVELS" \
    "$CARGO_TARGET_DIR/debug/seckill-torture" --scale ci --out "$SECKILL_RUN/torture"
fi

if [[ -x "$SECKILL_ROOT/scripts/edge.sh" && "${SECKILL_NO_EDGE:-}" != 1 ]]; then
  log "edge tests through wrangler dev"
  "$SECKILL_ROOT/scripts/edge.sh" test
fi
# The API against its own document (schemathesis on the test shop: scripts/contract.sh).
"$SECKILL_ROOT/scripts/contract.sh"
log "all tests passed"
