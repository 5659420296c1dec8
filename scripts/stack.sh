#!/usr/bin/env bash
# The whole stack on 127.0.0.1.
#   stack.sh up     install what is missing, start every service, the origin (serve + consume)
#                   and the edge, create the demo sale, wait until all answer, print the URLs
#   stack.sh down   stop exactly what `up` started (by pid file)
# PROFILE=cluster (make up PROFILE=cluster): the same stack spread the way production spreads
# it, on loopback: a Redis Cluster of three masters, RocketMQ as 2m-2s-sync (two name servers,
# brokers a and b each with a synchronous slave), two origins and two consumers (same groups),
# and the edge over both origins.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$SECKILL_ROOT"

ORIGIN_URL="http://$SECKILL_HOST:$ORIGIN_PORT"
ORIGIN2_URL="http://$SECKILL_HOST:$ORIGIN2_PORT"
ORIGIN_BIN="$CARGO_TARGET_DIR/debug/seckill-origin"
PROFILE_FILE="$SECKILL_RUN/profile"
# The profile of the stack that is up (its file), else the one asked for (default single).
if [[ -z "${PROFILE:-}" && -f "$PROFILE_FILE" ]]; then PROFILE="$(cat "$PROFILE_FILE")"; fi
PROFILE="${PROFILE:-single}"
[[ "$PROFILE" == single || "$PROFILE" == cluster ]] || die "PROFILE must be single or cluster, got '$PROFILE'"

# The origin's settings for this stack (see config/base.toml for every key).
origin_env() {
  export APP_HTTP__HOST="$SECKILL_HOST" APP_HTTP__PORT="$ORIGIN_PORT"
  export APP_CONSUMER__HOST="$SECKILL_HOST" APP_CONSUMER__PORT="$CONSUMER_PORT"
  # The development stack: the only environment with the public secrets and the local login.
  export APP_ENVIRONMENT=local APP_AUTH__LOCAL_LOGIN=true
  export APP_HTTP__ADMIN_TOKEN="$ADMIN_TOKEN" APP_HTTP__EDGE_SECRET="$EDGE_SECRET"
  export APP_AUTH__TOKEN_KEYS="$TOKEN_KEYS"
  export APP_LOG__FORMAT="$LOG_FORMAT"
  export APP_REDIS__URL="redis://$SECKILL_HOST:$REDIS_PORT"
  export APP_MYSQL__HOST="$SECKILL_HOST" APP_MYSQL__PORT="$MYSQL_PORT" APP_MYSQL__USERNAME="$MYSQL_USER"
  export APP_MYSQL__PASSWORD="$MYSQL_PASSWORD" APP_MYSQL__DATABASE="$MYSQL_DATABASE"
  export APP_ROCKETMQ__NAMESRV_ADDR="$SECKILL_HOST:$NAMESRV_PORT"
  export APP_CONFIG_DIR="$SECKILL_ROOT/config"
  if [[ "$PROFILE" == cluster ]]; then
    export APP_REDIS__CLUSTER_URLS="$(redis_cluster_urls)"
    # Both name servers, as every broker is given them: either may die.
    export APP_ROCKETMQ__NAMESRV_ADDR="$SECKILL_HOST:$NAMESRV_PORT;$SECKILL_HOST:$((NAMESRV_PORT + 10))"
    # Strict durability with replicas: a buy is QUEUED only once a replica holds it.
    if [[ "$DURABILITY" == strict ]]; then export APP_REDIS__REPLICA_ACKS=1; fi
  fi
}

build_origin() {
  log "building the origin (cargo target: $CARGO_TARGET_DIR)"
  cargo build --quiet -p seckill-origin
}

# start_once NAME PORT CMD...: start CMD as NAME unless PORT is already open. By its port, not
# its pid file: after a reboot that pid may belong to anything.
start_once() {
  local name="$1" port="$2"; shift 2
  if port_open "$port"; then
    log "$name: port $port already open, reusing it"
  else
    start_bg "$name" "$@"
  fi
}

start_origin() {
  origin_env
  start_once origin "$ORIGIN_PORT" "$ORIGIN_BIN" serve
  start_once consumer "$CONSUMER_PORT" "$ORIGIN_BIN" consume
  wait_http origin "$ORIGIN_URL/health" 90
  wait_http consumer "http://$SECKILL_HOST:$CONSUMER_PORT/livez" 90
  if [[ "$PROFILE" == cluster ]]; then
    # The second origin and consumer: the same settings on their own ports, the same groups.
    APP_HTTP__PORT="$ORIGIN2_PORT" start_once origin-2 "$ORIGIN2_PORT" "$ORIGIN_BIN" serve
    APP_CONSUMER__PORT="$CONSUMER2_PORT" start_once consumer-2 "$CONSUMER2_PORT" "$ORIGIN_BIN" consume
    wait_http origin-2 "$ORIGIN2_URL/health" 90
    wait_http consumer-2 "http://$SECKILL_HOST:$CONSUMER2_PORT/livez" 90
  fi
}

demo_sale() {
  local products
  products="$(curl -sS -f -H "x-seckill-edge-secret: $EDGE_SECRET" "$ORIGIN_URL/api/products")"
  if [[ "$products" == *'"id":1,'* ]]; then
    log "demo sale: product 1 exists"
  else
    admin POST /admin/products '{"name":"Aurora X1 phone, 256 GB","price":"6999.00","stock":100,"waitingRoom":{"newUsersPerInterval":500,"intervalSecs":5,"maxActiveUsers":5000,"sessionSecs":600,"challenge":{"difficulty":19}}}' >/dev/null
    log "demo sale: created product 1 (stock 100, price 6999.00, waiting room: 500 new users per 5 s, a challenge of difficulty 19)"
  fi
  # A sale Redis already holds is live: loading it again is refused (409 SALE_LIVE) and would
  # be pointless, so only a sale Redis does not hold is loaded.
  if [[ "$(admin GET /admin/products/1/stock)" == *'"redis":null'* ]]; then
    if admin POST /admin/products/1/preload >/dev/null; then
      log "demo sale: loaded into Redis"
    else
      log "demo sale: preload refused; POST /admin/products/1/preload says why (the sale is not on sale)"
    fi
  else
    log "demo sale: already loaded in Redis"
  fi
}

up() {
  if [[ -f "$PROFILE_FILE" && "$(cat "$PROFILE_FILE")" != "$PROFILE" ]] && port_open "$ORIGIN_PORT"; then
    die "the stack is up with PROFILE=$(cat "$PROFILE_FILE"); make down first, then make up PROFILE=$PROFILE"
  fi
  mkdir -p "$SECKILL_RUN"; echo "$PROFILE" >"$PROFILE_FILE"
  "$SECKILL_ROOT/scripts/services.sh" install
  "$SECKILL_ROOT/scripts/services.sh" start redis
  "$SECKILL_ROOT/scripts/services.sh" start mysql
  if [[ "$PROFILE" == cluster ]]; then
    "$SECKILL_ROOT/scripts/services.sh" start redis-cluster
    "$SECKILL_ROOT/scripts/services.sh" start mq dev 2m-2s
  else
    "$SECKILL_ROOT/scripts/services.sh" start mq dev
  fi
  build_origin
  origin_env
  "$ORIGIN_BIN" migrate >>"$SECKILL_LOGS/migrate.log" 2>&1 || die "migrations failed (see $SECKILL_LOGS/migrate.log)"
  start_origin
  "$SECKILL_ROOT/scripts/services.sh" start prometheus
  demo_sale
  if [[ -x "$SECKILL_ROOT/scripts/edge.sh" && "${SECKILL_NO_EDGE:-}" != 1 ]]; then
    "$SECKILL_ROOT/scripts/edge.sh" install
    "$SECKILL_ROOT/scripts/edge.sh" build
    local origins=""
    [[ "$PROFILE" == cluster ]] && origins="$ORIGIN_URL,$ORIGIN2_URL"
    ORIGIN_URL="$ORIGIN_URL" ORIGIN_URLS="$origins" "$SECKILL_ROOT/scripts/edge.sh" start
  fi
  local cluster_lines=""
  if [[ "$PROFILE" == cluster ]]; then
    cluster_lines="
    profile:       cluster: Redis Cluster masters $REDIS_CLUSTER_PORTS, replicas $REDIS_CLUSTER_REPLICA_PORTS,
                   name servers $NAMESRV_PORT and $((NAMESRV_PORT + 10)), broker masters a and b on $BROKER_PORT and $((BROKER_PORT + 20)),
                   their synchronous slaves on $((BROKER_PORT + 40)) and $((BROKER_PORT + 60)),
                   origins $ORIGIN_URL and $ORIGIN2_URL (the edge spreads users over both), consumers on $CONSUMER_PORT and $CONSUMER2_PORT"
  fi
  cat <<MSG

  seckill is up.
    shop (edge):   http://$SECKILL_HOST:$EDGE_PORT/
    origin API:    $ORIGIN_URL   (public routes need header x-seckill-edge-secret: $EDGE_SECRET)
    admin token:   $ADMIN_TOKEN   (Authorization: Bearer $ADMIN_TOKEN)
    admin console: $ORIGIN_URL/admin/ui   (enter the admin token once)
    API reference: $ORIGIN_URL/admin/docs/   (OpenAPI 3: $ORIGIN_URL/admin/openapi.json)
    metrics:       $ORIGIN_URL/metrics (serve), http://$SECKILL_HOST:$CONSUMER_PORT/metrics (consume)
    prometheus:    http://$SECKILL_HOST:$PROMETHEUS_PORT/ (rules: config/prometheus/rules.yml; Grafana: config/grafana/)
    demo sale:     product 1, stock 100, price 6999.00
    logs:          $SECKILL_LOGS$cluster_lines
  Stop everything with: make down

MSG
}

down() {
  "$SECKILL_ROOT/scripts/test-shop.sh" down || true
  [[ -x "$SECKILL_ROOT/scripts/edge.sh" ]] && "$SECKILL_ROOT/scripts/edge.sh" stop || true
  # Everything in the registry, in reverse start order (the edge was stopped above).
  local entries name i
  mapfile -t entries < <(service_registry)
  for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
    read -r name _ _ <<<"${entries[i]}"
    stop_pidfile "$name"
  done
  rm -f "$PROFILE_FILE"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  # NAME=value lines, each value quoted for the shell (callers eval them).
  origin-env) origin_env; env | grep '^APP_' | while IFS='=' read -r name value; do printf '%s=%q\n' "$name" "$value"; done ;;
  *) die "usage: stack.sh up | down" ;;
esac
