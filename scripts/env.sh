# Shared settings for every script in scripts/. Source it; do not run it.
# Every value can be overridden from the environment (same names).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SECKILL_ROOT="$ROOT"

# Build and tool caches live outside the clone, so a fresh clone reuses them.
export SECKILL_CACHE="${SECKILL_CACHE:-$HOME/.cache/seckill}"
export SECKILL_TOOLS="${SECKILL_TOOLS:-$SECKILL_CACHE/tools}"      # cargo-installed binaries (bin/)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SECKILL_CACHE/target}"
# No incremental artifacts: in a cache that every run and clone shares they only pile up
# (26 GB after a day's work here), and a full disk stops the broker taking writes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Runtime state of this clone: logs, pid files, service data.
export SECKILL_RUN="${SECKILL_RUN:-$ROOT/.run}"
export SECKILL_LOGS="$SECKILL_RUN/logs"
export SECKILL_PIDS="$SECKILL_RUN/pids"
export SECKILL_DATA="$SECKILL_RUN/data"

export SECKILL_HOST="${SECKILL_HOST:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-6379}"
export MYSQL_PORT="${MYSQL_PORT:-3306}"
export MYSQL_USER="${MYSQL_USER:-seckill}"
export MYSQL_PASSWORD="${MYSQL_PASSWORD:-seckill}"
export MYSQL_DATABASE="${MYSQL_DATABASE:-seckill}"
export NAMESRV_PORT="${NAMESRV_PORT:-9876}"
export BROKER_PORT="${BROKER_PORT:-10911}"
export ORIGIN_PORT="${ORIGIN_PORT:-8080}"
export CONSUMER_PORT="${CONSUMER_PORT:-8081}"   # `consume`'s /metrics and /livez
export EDGE_PORT="${EDGE_PORT:-8787}"
export PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
export NODE_EXPORTER_PORT="${NODE_EXPORTER_PORT:-9100}"
# The test shop (scripts/test-shop.sh), where the edge tests buy: its own origin, consumer,
# Prometheus and edge.
# The Redis Cluster the cluster tests use (scripts/services.sh start redis-cluster): 3 masters
# (the seed nodes) and a replica of each.
export REDIS_CLUSTER_PORTS="${REDIS_CLUSTER_PORTS:-7001 7002 7003}"
export REDIS_CLUSTER_REPLICA_PORTS="${REDIS_CLUSTER_REPLICA_PORTS:-7004 7005 7006}"
# The cluster profile's second origin (serve) and consumer (make up PROFILE=cluster).
export ORIGIN2_PORT="${ORIGIN2_PORT:-8082}"
export CONSUMER2_PORT="${CONSUMER2_PORT:-8083}"
export TEST_SHOP_ORIGIN_PORT="${TEST_SHOP_ORIGIN_PORT:-8090}"
export TEST_SHOP_CONSUMER_PORT="${TEST_SHOP_CONSUMER_PORT:-8091}"
export TEST_SHOP_PROMETHEUS_PORT="${TEST_SHOP_PROMETHEUS_PORT:-9091}"
export TEST_SHOP_EDGE_PORT="${TEST_SHOP_EDGE_PORT:-8797}"
export TEST_SHOP_ORIGIN2_PORT="${TEST_SHOP_ORIGIN2_PORT:-8092}"
export TEST_SHOP_EDGE2_PORT="${TEST_SHOP_EDGE2_PORT:-8798}"
export LOG_FORMAT="${LOG_FORMAT:-text}"   # the origin's log lines: text or json (docs/OPERATIONS.md "Logs and request ids")
export ADMIN_TOKEN="${ADMIN_TOKEN:-dev-admin-token}"
export EDGE_SECRET="${EDGE_SECRET:-dev-edge-secret}"
# Identity-token keys, "kid:secret[,kid:secret...]" (docs/DESIGN.md "Identity"): the origin signs the
# local login's tokens with the first, the edge and the origin verify with any. Public default.
# The edge's per-IP rate limit for the local stack (per 10 s): every test and bench client is
# 127.0.0.1 here, so it is high; wrangler.toml's own (300) is what a deploy gets.
export EDGE_IP_RATE_LIMIT="${EDGE_IP_RATE_LIMIT:-1000000}"
export TOKEN_KEYS="${TOKEN_KEYS:-dev:seckill-local-development-signing-key-not-secret}"

# Durability: what an acknowledged write survives (docs/OPERATIONS.md "Durability"). DURABILITY=strict
# fsyncs every acknowledged write in all three stores; each knob can also be set alone.
export DURABILITY="${DURABILITY:-default}"
case "$DURABILITY" in
  default) _flush=ASYNC_FLUSH _fsync=everysec _trx=1 ;;
  strict) _flush=SYNC_FLUSH _fsync=always _trx=1 ;;
  *) printf '[seckill] error: DURABILITY must be default or strict, got %s\n' "$DURABILITY" >&2; exit 2 ;;
esac
export BROKER_FLUSH_DISK_TYPE="${BROKER_FLUSH_DISK_TYPE:-$_flush}"   # ASYNC_FLUSH | SYNC_FLUSH
export REDIS_APPENDFSYNC="${REDIS_APPENDFSYNC:-$_fsync}"             # everysec | always | no
export MYSQL_FLUSH_LOG_AT_TRX_COMMIT="${MYSQL_FLUSH_LOG_AT_TRX_COMMIT:-$_trx}"  # 1 | 2 | 0
unset _flush _fsync _trx
_bad() { printf '[seckill] error: %s must be one of %s, got %s\n' "$1" "$2" "$3" >&2; exit 2; }
[[ "$BROKER_FLUSH_DISK_TYPE" =~ ^(ASYNC_FLUSH|SYNC_FLUSH)$ ]] || _bad BROKER_FLUSH_DISK_TYPE "ASYNC_FLUSH SYNC_FLUSH" "$BROKER_FLUSH_DISK_TYPE"
[[ "$REDIS_APPENDFSYNC" =~ ^(everysec|always|no)$ ]] || _bad REDIS_APPENDFSYNC "everysec always no" "$REDIS_APPENDFSYNC"
[[ "$MYSQL_FLUSH_LOG_AT_TRX_COMMIT" =~ ^[012]$ ]] || _bad MYSQL_FLUSH_LOG_AT_TRX_COMMIT "0 1 2" "$MYSQL_FLUSH_LOG_AT_TRX_COMMIT"

# The brokers (rocketmq-store 1.0) measure their disk as 1 - available / size; df's Use% is
# used / (used + available), far lower on a disk that holds space back (on one CI box 81 % against
# 46 %). Past 75 % they delete expired files, past 85 % their oldest files even if unexpired, past
# 90 % they refuse every write. No broker is started on a disk fuller than this (%), measured
# their way (disk_used_pct below): a run's builds and logs must fit between it and 90 %.
export BROKER_DISK_MAX_USED_PERCENT="${BROKER_DISK_MAX_USED_PERCENT:-87}"
[[ "$BROKER_DISK_MAX_USED_PERCENT" =~ ^[0-9]+$ && "$BROKER_DISK_MAX_USED_PERCENT" -ge 1 && "$BROKER_DISK_MAX_USED_PERCENT" -le 89 ]] ||
  { printf '[seckill] error: BROKER_DISK_MAX_USED_PERCENT must be 1 to 89, got %s\n' "$BROKER_DISK_MAX_USED_PERCENT" >&2; exit 2; }

# A SYNC_MASTER with a slave (PROFILE=cluster, the test pair) counts this many replicas, itself
# included, before it answers SEND_OK: 2 waits for the slave; 1 does not (to measure the wait).
export BROKER_IN_SYNC_REPLICAS="${BROKER_IN_SYNC_REPLICAS:-2}"
[[ "$BROKER_IN_SYNC_REPLICAS" =~ ^[12]$ ]] || _bad BROKER_IN_SYNC_REPLICAS "1 2" "$BROKER_IN_SYNC_REPLICAS"

# The delay table of the test brokers (make test, make torture; scripts/services.sh): level 16
# (the unpaid-order cancel) 3 s and the retry levels (3 to 17) 1 s, so lifecycle and retry tests
# run in seconds; the code still sends level 16. Level 18 = 2 h: tests of the buy path send
# their cancels there so that their orders stay UNPAID. The origins of those runs are told the
# same table (APP_ROCKETMQ__DELAY_LEVELS): they refuse a cancel level shorter than the pay timeout.
export TEST_DELAY_LEVELS="${TEST_DELAY_LEVELS:-1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 3s 1s 2h}"

# Pinned tool versions.
export ROCKETMQ_VERSION="${ROCKETMQ_VERSION:-1.0.0}"

mkdir -p "$SECKILL_CACHE" "$SECKILL_TOOLS" "$SECKILL_LOGS" "$SECKILL_PIDS" "$SECKILL_DATA"

log() { printf '[seckill] %s\n' "$*" >&2; }
die() { printf '[seckill] error: %s\n' "$*" >&2; exit 1; }
# admin METHOD PATH [JSON]: the admin API of the origin at $ORIGIN_URL (the caller's: the stack's,
# the test shop's), with $ADMIN_TOKEN; fails on an error answer.
admin() {
  curl -sS -f -X "$1" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
    ${3:+-d "$3"} "$ORIGIN_URL$2"
}

# The Redis Cluster's seed nodes (REDIS_CLUSTER_PORTS), comma-separated, as redis:// URLs.
redis_cluster_urls() {
  local urls="" port
  for port in $REDIS_CLUSTER_PORTS; do urls+="redis://$SECKILL_HOST:$port,"; done
  echo "${urls%,}"
}

# ensure_toolchain: what rust-toolchain.toml lists (components, the wasm target) is installed.
# rustup installs a listed component on first use, a missing target not always: ask it to.
ensure_toolchain() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "rustup toolchain install (rust-toolchain.toml: rustfmt, clippy, wasm32-unknown-unknown)"
    (cd "$SECKILL_ROOT" && rustup toolchain install)
  fi
}

# The registry of every long-running process the scripts start, one "NAME PORT WHEN" line each,
# in start order: `make status` lists them, `make logs` reads their logs, `make down` stops them
# (in reverse). NAME names the pid file and the log ($SECKILL_PIDS/NAME.pid, $SECKILL_LOGS/NAME.log);
# PORT is where it answers; WHEN is the profile that needs it: `stack` (make up, either
# profile), `cluster` (make up PROFILE=cluster) or `test` (make test adds it; the cluster's
# Redis nodes serve both). The test shop (scripts/test-shop.sh) keeps its own.
service_registry() {
  local port b=$((BROKER_PORT + 20)) pb=$((${PAIR_BROKER_PORT:-10961} + 20))
  echo "redis $REDIS_PORT stack"
  echo "mysql $MYSQL_PORT stack"
  for port in $REDIS_CLUSTER_PORTS $REDIS_CLUSTER_REPLICA_PORTS; do echo "redis-cluster-$port $port cluster,test"; done
  echo "namesrv-dev $NAMESRV_PORT stack"
  echo "broker-dev $BROKER_PORT stack"
  echo "namesrv-dev-2 $((NAMESRV_PORT + 10)) cluster"
  echo "broker-dev-b $b cluster"
  echo "broker-dev-s $((BROKER_PORT + 40)) cluster"
  echo "broker-dev-b-s $((b + 40)) cluster"
  echo "origin $ORIGIN_PORT stack"
  echo "consumer $CONSUMER_PORT stack"
  echo "origin-2 $ORIGIN2_PORT cluster"
  echo "consumer-2 $CONSUMER2_PORT cluster"
  echo "node-exporter $NODE_EXPORTER_PORT stack"
  echo "prometheus $PROMETHEUS_PORT stack"
  echo "edge $EDGE_PORT stack"
  echo "namesrv-test ${TEST_NAMESRV_PORT:-9877} test"
  echo "broker-test ${TEST_BROKER_PORT:-10921} test"
  echo "namesrv-pair ${PAIR_NAMESRV_PORT:-9878} test"
  echo "namesrv-pair-2 $((${PAIR_NAMESRV_PORT:-9878} + 10)) test"
  echo "broker-pair ${PAIR_BROKER_PORT:-10961} test"
  echo "broker-pair-b $pb test"
  echo "broker-pair-s $((${PAIR_BROKER_PORT:-10961} + 40)) test"
  echo "broker-pair-b-s $((pb + 40)) test"
  echo "namesrv-bench ${BENCH_NAMESRV_PORT:-9879} bench"
  echo "namesrv-bench-2 $((${BENCH_NAMESRV_PORT:-9879} + 10)) bench"
  echo "broker-bench ${BENCH_BROKER_PORT:-11041} bench"
  echo "broker-bench-b $((${BENCH_BROKER_PORT:-11041} + 20)) bench"
  echo "broker-bench-s $((${BENCH_BROKER_PORT:-11041} + 40)) bench"
  echo "broker-bench-b-s $((${BENCH_BROKER_PORT:-11041} + 60)) bench"
}

# port_open PORT: true if something accepts TCP connections on $SECKILL_HOST:PORT.
port_open() { (exec 3<>"/dev/tcp/$SECKILL_HOST/$1") 2>/dev/null; }

# disk_used_pct DIR: how full the disk holding DIR is, as the brokers measure it: 1 - available
# / size, in whole percent rounded up.
disk_used_pct() { df -B1 --output=size,avail "$1" | awk 'NR == 2 { printf "%d\n", ($1 - $2) * 100 / $1 + 0.999 }'; }

# wait_port NAME PORT SECONDS: wait until PORT accepts connections.
wait_port() {
  local name="$1" port="$2" secs="${3:-60}" i
  for ((i = 0; i < secs * 10; i++)); do
    port_open "$port" && return 0
    sleep 0.1
  done
  die "$name did not open port $port within ${secs}s (logs: $SECKILL_LOGS)"
}

# wait_http NAME URL SECONDS: until URL answers 2xx, or die naming NAME's log.
wait_http() {
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    curl -s -o /dev/null -f "$2" && return 0
    sleep 0.2
  done
  die "$1 did not answer at $2 within $3 s (log: $SECKILL_LOGS/$1.log)"
}

# start_bg NAME CMD...: start CMD in its own process group, log to $SECKILL_LOGS/NAME.log,
# record its pid in $SECKILL_PIDS/NAME.pid (the pid is also the process group id).
start_bg() {
  local name="$1"; shift
  setsid "$@" >>"$SECKILL_LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$SECKILL_PIDS/$name.pid"
}

# stop_pidfile NAME [SIGNAL]: stop the process group recorded by start_bg, wait for it to go.
stop_pidfile() {
  local name="$1" sig="${2:-TERM}" pidfile="$SECKILL_PIDS/$1.pid" pid i
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}
