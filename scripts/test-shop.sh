#!/usr/bin/env bash
# The test shop: what `scripts/edge.sh test` runs the edge and browser tests against, so they
# never create sales or buy in the operator's shop (make up's). It has an origin (`serve` and
# `consume`), a Prometheus and an edge of its own, on their own ports (TEST_SHOP_* in env.sh),
# with its own MySQL database (seckill_edge_test, made fresh at each `up`), Redis key prefix,
# RocketMQ topics and groups (on make up's broker), and edge state. It shares the Redis, MariaDB
# and broker processes with the stack.
#
#   scripts/test-shop.sh up     start it fresh (an earlier one is stopped first)
#   scripts/test-shop.sh urls   EDGE_URL=… ORIGIN_URL=… PROMETHEUS_URL=… of the test shop
#   scripts/test-shop.sh down   stop it (its database is kept until the next `up`, to look at)
#   scripts/test-shop.sh two-origins up|down
#                               a second origin (serve, TEST_SHOP_ORIGIN2_PORT) beside the shop's
#                               and a second edge (TEST_SHOP_EDGE2_PORT) spreading users over both
#                               (ORIGIN_URLS), for the failover test; the shop's own edge is unchanged
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

ORIGIN_BIN="$CARGO_TARGET_DIR/debug/seckill-origin"
DATABASE=seckill_edge_test
KEY_PREFIX=seckill-edge-test
SUFFIX=-edge-test   # of every topic and group

urls() {
  echo "EDGE_URL=http://$SECKILL_HOST:$TEST_SHOP_EDGE_PORT"
  echo "ORIGIN_URL=http://$SECKILL_HOST:$TEST_SHOP_ORIGIN_PORT"
  echo "PROMETHEUS_URL=http://$SECKILL_HOST:$TEST_SHOP_PROMETHEUS_PORT"
  echo "ORIGIN2_URL=http://$SECKILL_HOST:$TEST_SHOP_ORIGIN2_PORT"
  echo "EDGE2_URL=http://$SECKILL_HOST:$TEST_SHOP_EDGE2_PORT"
  echo "SHOP_REDIS=$SECKILL_HOST:$REDIS_PORT"
  echo "SHOP_KEY_PREFIX=$KEY_PREFIX"
  echo "SHOP_MYSQL=$MYSQL_USER:$MYSQL_PASSWORD@$SECKILL_HOST:$MYSQL_PORT/$DATABASE"
}

# The stack's origin settings, then the test shop's own ports, database, key prefix, topics, groups.
shop_env() {
  eval "$("$SECKILL_ROOT/scripts/stack.sh" origin-env | sed 's/^/export /')"
  export APP_HTTP__PORT="$TEST_SHOP_ORIGIN_PORT" APP_CONSUMER__PORT="$TEST_SHOP_CONSUMER_PORT"
  export APP_MYSQL__DATABASE="$DATABASE" APP_REDIS__KEY_PREFIX="$KEY_PREFIX"
  export APP_ROCKETMQ__ORDER_TOPIC="seckill-order$SUFFIX" APP_ROCKETMQ__CANCEL_TOPIC="seckill-cancel$SUFFIX"
  export APP_ROCKETMQ__EVENT_TOPIC="seckill-order-event$SUFFIX"
  export APP_ROCKETMQ__PRODUCER_GROUP="seckill-producer$SUFFIX"
  export APP_ROCKETMQ__ORDER_WRITER_GROUP="seckill-order-writer$SUFFIX"
  export APP_ROCKETMQ__CANCELLER_GROUP="seckill-order-canceller$SUFFIX"
}

edge() { EDGE_NAME=edge-test EDGE_PORT="$TEST_SHOP_EDGE_PORT" EDGE_URL="http://$SECKILL_HOST:$TEST_SHOP_EDGE_PORT" \
  ORIGIN_URL="http://$SECKILL_HOST:$TEST_SHOP_ORIGIN_PORT" "$SECKILL_ROOT/scripts/edge.sh" "$@"; }

edge2() { EDGE_NAME=edge-test-2 EDGE_PORT="$TEST_SHOP_EDGE2_PORT" EDGE_URL="http://$SECKILL_HOST:$TEST_SHOP_EDGE2_PORT" \
  ORIGIN_URL="http://$SECKILL_HOST:$TEST_SHOP_ORIGIN_PORT" \
  ORIGIN_URLS="http://$SECKILL_HOST:$TEST_SHOP_ORIGIN_PORT,http://$SECKILL_HOST:$TEST_SHOP_ORIGIN2_PORT" \
  "$SECKILL_ROOT/scripts/edge.sh" "$@"; }

two_origins_down() {
  edge2 stop
  stop_pidfile origin-test-2
}

# Needs the shop up (same database, Redis prefix and topics: the second origin is a peer).
two_origins_up() {
  two_origins_down
  local port
  for port in "$TEST_SHOP_ORIGIN2_PORT" "$TEST_SHOP_EDGE2_PORT"; do
    ! port_open "$port" || die "port $port (test shop) is taken by something else"
  done
  shop_env
  APP_HTTP__PORT="$TEST_SHOP_ORIGIN2_PORT" start_bg origin-test-2 "$ORIGIN_BIN" serve
  wait_http origin-test-2 "http://$SECKILL_HOST:$TEST_SHOP_ORIGIN2_PORT/health" 90
  edge2 start
}

down() {
  two_origins_down
  edge stop
  local name
  for name in prometheus-test consumer-test origin-test; do stop_pidfile "$name"; done
}

up() {
  down
  local port
  for port in "$TEST_SHOP_ORIGIN_PORT" "$TEST_SHOP_CONSUMER_PORT" "$TEST_SHOP_PROMETHEUS_PORT" "$TEST_SHOP_EDGE_PORT"; do
    ! port_open "$port" || die "port $port (test shop) is taken by something else"
  done
  "$SECKILL_ROOT/scripts/services.sh" start redis
  "$SECKILL_ROOT/scripts/services.sh" start mysql
  "$SECKILL_ROOT/scripts/services.sh" start mq dev
  [[ -x "$ORIGIN_BIN" ]] || cargo build --quiet -p seckill-origin --bin seckill-origin
  "$SECKILL_ROOT/scripts/edge.sh" build
  shop_env

  # Fresh: no sale, order or key of an earlier run.
  mariadb --no-defaults -h "$SECKILL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" -p"$MYSQL_PASSWORD" \
    -e "DROP DATABASE IF EXISTS \`$DATABASE\`"
  "$ORIGIN_BIN" migrate >>"$SECKILL_LOGS/origin-test.log" 2>&1 || die "test shop: migrate failed (log: $SECKILL_LOGS/origin-test.log)"
  redis-cli -h "$SECKILL_HOST" -p "$REDIS_PORT" --scan --pattern "$KEY_PREFIX:*" |
    xargs -r -n 500 redis-cli -h "$SECKILL_HOST" -p "$REDIS_PORT" DEL >/dev/null

  start_bg origin-test "$ORIGIN_BIN" serve
  start_bg consumer-test "$ORIGIN_BIN" consume
  wait_http origin-test "http://$SECKILL_HOST:$TEST_SHOP_ORIGIN_PORT/health" 90
  wait_http consumer-test "http://$SECKILL_HOST:$TEST_SHOP_CONSUMER_PORT/livez" 90
  rm -rf "$SECKILL_DATA/prometheus-test"
  PROMETHEUS_NAME=prometheus-test PROMETHEUS_PORT="$TEST_SHOP_PROMETHEUS_PORT" \
    ORIGIN_PORT="$TEST_SHOP_ORIGIN_PORT" CONSUMER_PORT="$TEST_SHOP_CONSUMER_PORT" \
    "$SECKILL_ROOT/scripts/services.sh" start prometheus
  edge start
  log "test shop up: edge http://$SECKILL_HOST:$TEST_SHOP_EDGE_PORT, origin :$TEST_SHOP_ORIGIN_PORT (database $DATABASE)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  urls) urls ;;
  two-origins)
    case "${2:-}" in
      up) two_origins_up ;;
      down) two_origins_down ;;
      *) die "usage: test-shop.sh two-origins up | down" ;;
    esac ;;
  *) die "usage: test-shop.sh up | urls | down | two-origins up|down" ;;
esac
