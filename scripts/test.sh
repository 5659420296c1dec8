#!/usr/bin/env bash
# `make lint` (rustfmt, clippy), then every test: unit tests of all crates, end-to-end tests of
# the origin against the real services (with a test broker whose delay table is shrunk), the
# torture run at CI scale, and the edge's tests through `wrangler dev`. Exits non-zero on any
# failure.
# SECKILL_NO_TORTURE=1 / SECKILL_NO_EDGE=1 leave those parts out (for a quick local run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

# The habits gate first: a formatting slip or a clippy warning fails before the long part.
"$SECKILL_ROOT/scripts/lint.sh"
"$SECKILL_ROOT/scripts/stack.sh" up
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

log "cargo test (unit + end-to-end)"
# The test broker's delay table, for these origins only (the test shop's use the stack's broker).
APP_ROCKETMQ__DELAY_LEVELS="$TEST_DELAY_LEVELS" \
  cargo test --workspace --no-fail-fast -- --test-threads="${SECKILL_TEST_THREADS:-4}"

if [[ "${SECKILL_NO_TORTURE:-}" != 1 ]]; then
  # After the other tests: it restarts the test broker. `make torture` is the full-size run.
  log "torture at CI scale (every fault, a tenth of the load; make torture runs the full one)"
  cargo build --quiet -p seckill-e2e --bins
  APP_ROCKETMQ__DELAY_LEVELS="$TEST_DELAY_LEVELS" \
    "$CARGO_TARGET_DIR/debug/seckill-torture" --scale ci --out "$SECKILL_RUN/torture"
fi

if [[ -x "$SECKILL_ROOT/scripts/edge.sh" && "${SECKILL_NO_EDGE:-}" != 1 ]]; then
  log "edge tests through wrangler dev"
  "$SECKILL_ROOT/scripts/edge.sh" test
fi
log "all tests passed"
